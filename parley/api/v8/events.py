"""The v8 stream events (docs/protocol.md), made from the core's chunks.

Type 0 events carry ``model``, ``content`` (the new text), ``reasoning`` (only when there is
new reasoning), ``tool_calls`` (the calls as built so far, only while the model calls tools),
``finish_reason`` and ``usage`` — the last type-0 event has both. Extra types never change
type 0: 1 lists the references a reply used, 2 reports an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from parley.api.sse import DONE_LINE, event
from parley.chat.assemble import MessageBuilder
from parley.errors import ParleyError

if TYPE_CHECKING:
    from parley.chat.turn import Reply

MESSAGE, REFERENCES, ERROR = 0, 1, 2


def from_chunk(chunk: dict[str, Any], builder: MessageBuilder, model: str) -> dict[str, Any] | None:
    """The event for one chunk (already fed to ``builder``), or None for the finishing chunk,
    which is held back until usage is known."""
    choice = (chunk.get("choices") or [{}])[0]
    delta = choice.get("delta") or {}
    if choice.get("finish_reason"):
        return None
    event: dict[str, Any] = {"type": MESSAGE, "model": model, "content": delta.get("content") or ""}
    if thought := delta.get("reasoning_content") or delta.get("reasoning"):
        event["reasoning"] = thought
    if delta.get("tool_calls"):
        event["content"] = delta.get("content")
        event["tool_calls"] = builder.tool_calls()
    event["finish_reason"] = None
    event["usage"] = None
    return event


def final(
    last_chunk: dict[str, Any] | None, builder: MessageBuilder, model: str, usage: dict[str, Any]
) -> dict[str, Any]:
    delta = ((last_chunk or {}).get("choices") or [{}])[0].get("delta") or {}
    calls = builder.tool_calls()
    event: dict[str, Any] = {
        "type": MESSAGE,
        "model": model,
        "content": delta.get("content") or ("" if not calls else None),
    }
    if calls:
        event["tool_calls"] = calls
    event["finish_reason"] = builder.finish_reason or "stop"
    event["usage"] = usage
    return event


def error(message: str) -> dict[str, Any]:
    return {"type": ERROR, "error": message}


def references(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": REFERENCES, "references": items}


def reply_body(reply: Reply) -> dict[str, Any]:
    """A whole (non-streamed) reply: the stored assistant message."""
    message = reply.message
    body: dict[str, Any] = {
        "id": reply.stored_id,
        "content": message.get("content"),
        "reasoning": message.get("reasoning_content"),
        "model": reply.model,
        "finish_reason": reply.finish_reason,
    }
    if message.get("tool_calls"):
        body["tool_calls"] = message["tool_calls"]
    body["usage"] = reply.usage
    if reply.references:
        body["references"] = reply.references
    return body


class V8Encoder:
    """Type-0 events per chunk, the finishing one held back until usage is known; a type-1
    event with the references first; a type-2 event for an error."""

    def __init__(self, model: str) -> None:
        self.headers: dict[str, str] = {}
        self.model = model
        self._finishing: dict[str, Any] | None = None
        self._builder = MessageBuilder()  # the stream's own, once a chunk has come

    def reply(self, reply: Reply) -> dict[str, Any]:
        return reply_body(reply)

    def opening(self, refs: list[dict[str, Any]]) -> list[bytes]:
        return [event(references(refs))] if refs else []

    def chunk(self, chunk: dict[str, Any], builder: MessageBuilder) -> bytes | None:
        self._builder = builder
        ev = from_chunk(chunk, builder, self.model)
        if ev is None:
            self._finishing = chunk
            return None
        return event(ev)

    def closing(self, reply: Reply) -> list[bytes]:
        return [event(final(self._finishing, self._builder, self.model, reply.usage)), DONE_LINE]

    def error(self, exc: ParleyError) -> bytes:
        return event(error(exc.message))
