"""Splitting content into chunks of at most N tokens, counted with tiktoken's o200k_base.

Cuts fall at paragraph breaks first, then sentence ends (Chinese 。！？ and ；included, and
English . ! ?), then line breaks, then commas; only a run of text with no boundary at all is
cut hard at the token limit. ``overlap`` tokens of the previous chunk start the next one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parley import tokens

# Each level splits *after* its separator (zero-width), keeping it with the text before it.
LEVELS = [
    re.compile(r"(?<=\n\n)"),  # paragraphs
    re.compile(r"(?<=[。！？!?；;])|(?<=[.!?]\s)"),  # sentences
    re.compile(r"(?<=\n)"),  # lines
    re.compile(r"(?<=[，,、：:])"),  # clauses
]


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    token_count: int


def _pieces(text: str, limit: int, level: int = 0) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` tokens, at the coarsest boundary that works."""
    if tokens.count(text) <= limit:
        return [text]
    if level == len(LEVELS):
        ids = tokens.encoding().encode(text, disallowed_special=())
        return [tokens.encoding().decode(ids[i : i + limit]) for i in range(0, len(ids), limit)]
    parts = [p for p in LEVELS[level].split(text) if p]
    if len(parts) == 1:
        return _pieces(text, limit, level + 1)
    out: list[str] = []
    for part in parts:
        out.extend(_pieces(part, limit, level + 1) if tokens.count(part) > limit else [part])
    return out


def split(text: str, max_tokens: int = 1024, overlap: int = 0) -> list[Chunk]:
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    overlap = max(0, min(overlap, max_tokens // 2))
    enc = tokens.encoding()
    room = max_tokens - overlap
    whole = tokens.count(text)
    if whole <= room:  # one chunk, as the general path below would make it, with one encoding
        body = text.strip()
        return [Chunk(0, body, whole if body == text else tokens.count(body))]
    chunks: list[str] = []
    current, current_tokens = "", 0
    for piece in _pieces(text, room):
        n = tokens.count(piece)
        if current and current_tokens + n > room:
            chunks.append(current)
            current, current_tokens = "", 0
        current += piece
        current_tokens += n
    if current.strip() or not chunks:
        chunks.append(current)
    out: list[Chunk] = []
    previous_ids: list[int] = []
    for body in chunks:
        head = enc.decode(previous_ids[-overlap:]) if overlap and previous_ids else ""
        full = (head + body).strip()
        ids = enc.encode(full, disallowed_special=())
        if len(ids) > max_tokens:  # decode/encode seams can add a token: trim the overlap
            full = enc.decode(ids[len(ids) - max_tokens :]).strip()
            ids = enc.encode(full, disallowed_special=())
        previous_ids = enc.encode(body, disallowed_special=())
        if full:
            out.append(Chunk(len(out), full, len(ids)))
    return out or [Chunk(0, text.strip(), tokens.count(text.strip()))]
