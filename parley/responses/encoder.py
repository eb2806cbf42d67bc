"""The Responses API's shapes for a turn: the response object, and its stream of typed events
(``event: <type>`` and ``data: {...}`` with a ``sequence_number`` counting from 0)."""

from __future__ import annotations

from typing import Any

import orjson

from parley.chat.assemble import MessageBuilder
from parley.chat.turn import Reply
from parley.errors import ParleyError
from parley.responses.output import Draft

Body = dict[str, Any]


class ResponsesEncoder:
    def __init__(self, draft: Draft) -> None:
        self.draft = draft
        self.headers: dict[str, str] = {}
        self._sequence = 0

    def _event(self, event: Body) -> bytes:
        data = {**event, "sequence_number": self._sequence}
        self._sequence += 1
        kind: str = event["type"]
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _events(self, events: list[Body]) -> bytes:
        return b"".join(self._event(e) for e in events)

    def reply(self, reply: Reply) -> Body:
        return self.draft.finish(reply)

    def opening(self, references: list[Body]) -> list[bytes]:
        snapshot = self.draft.snapshot("in_progress")
        lines = [
            self._event({"type": "response.created", "response": snapshot}),
            self._event({"type": "response.in_progress", "response": snapshot}),
        ]
        if search := self.draft.searched(references):  # retrieval ran before the model started
            lines.append(self._events(search))
        return lines

    def chunk(self, chunk: Body, builder: MessageBuilder) -> bytes | None:
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) == 0:
                events = self.draft.output.feed(choice.get("delta") or {})
                return self._events(events) if events else None
        return None

    def closing(self, reply: Reply) -> list[bytes]:
        final = self.draft.finish(reply)  # already finished if the transcript stored it first
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        return [self._events(self.draft.closing_events), self._event({"type": kind, "response": final})]

    def error(self, exc: ParleyError) -> bytes:
        return self._event({"type": "response.failed", "response": self.draft.failed(exc)})
