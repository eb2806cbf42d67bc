"""OpenAI's chat shapes for a turn: ``chat.completion``, its chunks, ``[DONE]``, error events.

/v1 uses it as it is; the project API adds its ``session_id`` to every body and chunk and the
references to the first chunk (and the reply).
"""

from __future__ import annotations

from typing import Any

from parley.api.errors import openai_body
from parley.api.sse import DONE_LINE, event
from parley.chat.assemble import MessageBuilder
from parley.chat.turn import Reply
from parley.errors import ParleyError

Body = dict[str, Any]


class OpenAIEncoder:
    def __init__(self, include_usage: bool, headers: dict[str, str] | None = None, extra: Body | None = None) -> None:
        self.headers = headers or {}
        self.include_usage = include_usage
        self.extra = extra or {}  # fields every body and chunk carries
        self._first: Body = {}  # fields only the first chunk carries

    def reply(self, reply: Reply) -> Body:
        refs = {"references": reply.references} if reply.references else {}
        return {**reply.completion, **self.extra, **refs} if self.extra or refs else reply.completion

    def opening(self, references: list[Body]) -> list[bytes]:
        if references:
            self._first = {"references": references}
        return []

    def chunk(self, chunk: Body, builder: MessageBuilder) -> bytes | None:
        if self.extra or self._first:
            chunk = {**chunk, **self.extra, **self._first}
            self._first = {}
        return event(chunk)

    def closing(self, reply: Reply) -> list[bytes]:
        if not self.include_usage:
            return [DONE_LINE]
        usage = {
            "id": reply.id,
            "object": "chat.completion.chunk",
            "created": reply.created,
            "model": reply.model,
            "choices": [],
            "usage": reply.usage,
            **self.extra,
        }
        return [event(usage), DONE_LINE]

    def error(self, exc: ParleyError) -> bytes:
        return event(openai_body(exc))
