"""Seed 003's stream events, made from the core's chunks.

Type 0 events carry ``model``, ``content`` (the new text), ``reasoning`` (only when there is
new reasoning), ``tool_calls`` (the calls as built so far, only while the model calls tools),
``finish_reason`` and ``usage`` — the last type-0 event has both. Extra types never change
type 0: 1 lists the references a reply used, 2 reports an error.
"""

from __future__ import annotations

from typing import Any

from parley.chat.assemble import MessageBuilder

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
