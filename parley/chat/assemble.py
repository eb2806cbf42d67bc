"""Building one assistant message from streamed deltas."""

from __future__ import annotations

from typing import Any


class MessageBuilder:
    """Accumulates ``chat.completion.chunk`` deltas of choice 0 into a whole message.

    Tool calls are kept by their ``index`` so any number of parallel calls, interleaved in any
    order, come out intact; ``reasoning_content`` (DeepSeek, vLLM) and ``reasoning`` both count
    as reasoning. What a vendor needs back on a later turn rides along: Anthropic's signed
    ``thinking_blocks`` and a tool call's ``extra_content`` (Gemini's thought signature).
    """

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._thinking_blocks: list[dict[str, Any]] = []
        self.finish_reason: str | None = None

    def add(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """Feed one chunk; return its choice-0 delta (or None)."""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if text := delta.get("content"):
                self._content.append(text)
            if thought := delta.get("reasoning_content") or delta.get("reasoning"):
                self._reasoning.append(thought)
            for part in delta.get("tool_calls") or ():
                self._add_call(part)
            self._thinking_blocks.extend(delta.get("thinking_blocks") or ())
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            return delta
        return None

    def _add_call(self, part: dict[str, Any]) -> None:
        index = part.get("index", len(self._calls))
        call = self._calls.setdefault(index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        if part.get("id"):
            call["id"] = part["id"]
        if part.get("type"):
            call["type"] = part["type"]
        if part.get("extra_content"):
            call["extra_content"] = part["extra_content"]
        fn = part.get("function") or {}
        if fn.get("name"):
            call["function"]["name"] += fn["name"]
        if fn.get("arguments"):
            call["function"]["arguments"] += fn["arguments"]

    @property
    def content(self) -> str:
        return "".join(self._content)

    @property
    def reasoning(self) -> str | None:
        return "".join(self._reasoning) or None

    def tool_calls(self) -> list[dict[str, Any]] | None:
        """The calls as built so far, in index order (copies: safe to hand out mid-stream)."""
        if not self._calls:
            return None
        return [{**c, "function": dict(c["function"])} for _, c in sorted(self._calls.items())]

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "role": "assistant",
            "content": self.content if self._content or not self._calls else None,
        }
        if calls := self.tool_calls():
            msg["tool_calls"] = calls
        if self._reasoning:
            msg["reasoning_content"] = self.reasoning
        if self._thinking_blocks:
            msg["thinking_blocks"] = list(self._thinking_blocks)
        return msg
