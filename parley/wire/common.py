"""What every vendor translation needs from OpenAI's side: request fields read the same way,
and ``chat.completion`` / ``chat.completion.chunk`` / usage objects built the same way."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from parley.errors import BadRequest

Body = dict[str, Any]

# Magic numbers of the image formats every vendor takes, for bytes whose server named no type.
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image(data: bytes) -> str | None:
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def parse_data_url(url: str, param: str) -> tuple[str, str]:
    """(media type, base64 payload) of a ``data:`` URL."""
    head, comma, payload = url[5:].partition(",")
    if not comma:
        raise BadRequest(f"'{param}' is not a valid data URL.", param=param, code="invalid_value")
    mime = head.split(";")[0].strip().lower()
    if ";base64" not in head.lower():
        payload = base64.b64encode(unquote_to_bytes(payload)).decode()
    return mime, payload.strip()


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def content_text(content: Any) -> str:
    """The text of a message content: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def system_prompt(messages: list[Body]) -> str | None:
    """Every system and developer message's text, joined: vendors take one system prompt."""
    texts = [content_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    joined = "\n\n".join(t for t in texts if t)
    return joined or None


def stop_sequences(body: Body) -> list[str] | None:
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop]
    return list(stop) if stop else None


def max_output_tokens(body: Body) -> int | None:
    return body.get("max_completion_tokens") or body.get("max_tokens")


def single_choice(body: Body) -> None:
    if (body.get("n") or 1) > 1:
        raise BadRequest("This model's provider returns one choice per request: 'n' must be 1.", param="n")


def tool_arguments(raw: Any) -> dict[str, Any]:
    """A tool call's ``arguments`` (a JSON string) as the object vendors want.

    A model sometimes emits arguments that are not a JSON object; the history that carries
    them must still go on, so they travel wrapped (``_raw_arguments`` / ``value``), as the
    dialects wrap them too, rather than failing every later turn of the conversation."""
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": raw}
    return value if isinstance(value, dict) else {"value": value}


def dump_arguments(args: Any) -> str:
    return orjson.dumps(args if args is not None else {}).decode()


def tool_names_by_id(messages: list[Body]) -> dict[str, str]:
    """Each earlier tool call's function name, by its id: tool results name only the id."""
    names: dict[str, str] = {}
    for m in messages:
        for call in m.get("tool_calls") or ():
            if isinstance(call, dict) and call.get("id"):
                names[call["id"]] = (call.get("function") or {}).get("name") or ""
    return names


Convert = Callable[[Body, int], list[Body]]


def turns(
    messages: list[Body], *, user: Convert, assistant: Convert, tool: Convert, model_role: str, key: str
) -> list[Body]:
    """The conversation as a vendor's turns (``{"role", key: [...]}``), system messages left
    out (vendors take them apart). Each message's pieces come from the vendor's converter for
    its role; tool results belong to the user's turn, and adjacent turns of one role are
    merged, so parallel calls' results go back together, in one turn, as vendors want them."""
    out: list[Body] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role in ("system", "developer"):
            continue
        if role == "assistant":
            pieces, role = assistant(m, i), model_role
        elif role == "tool":
            pieces, role = tool(m, i), "user"
        elif role == "user":
            pieces = user(m, i)
        else:
            raise BadRequest(
                f"'messages[{i}].role': {role!r} messages are not supported by this model's provider; use tools.",
                param=f"messages[{i}].role",
            )
        if not pieces:
            continue
        if out and out[-1]["role"] == role:
            out[-1][key].extend(pieces)
        else:
            out.append({"role": role, key: pieces})
    return out


def usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0, total: int | None = None) -> Body:
    """OpenAI's usage object. ``completion`` includes ``reasoning``, ``prompt`` includes ``cached``."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if total is not None else prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def completion(
    id: str, model: str, message: Body, finish_reason: str | None, usage: Body | None, created: int | None = None
) -> Body:
    out: Body = {
        "id": id or "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        out["usage"] = usage
    return out


class ChunkMaker:
    """``chat.completion.chunk`` objects of one stream: same id, model and time on each."""

    def __init__(self, id: str = "", model: str = "", created: int | None = None) -> None:
        self.id = id
        self.model = model
        self.created = created or int(time.time())

    def delta(self, delta: Body, finish_reason: str | None = None) -> Body:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    def usage(self, usage: Body) -> Body:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }
