"""The response object and its output items, as OpenAI shapes them.

``Output`` builds the items either whole from a finished chat message or grown from stream
deltas, returning the events each delta makes; ``Draft`` is one response being made, shared
by the encoder (which streams it) and the transcript (which stores it), so both see the same
ids and the same final object.
"""

from __future__ import annotations

import re
import time
from typing import Any

from parley.chat.turn import Reply
from parley.errors import ParleyError
from parley.responses.ids import new_id

Body = dict[str, Any]


def usage(chat: Body | None) -> Body:
    """Chat usage (prompt/completion tokens) as the Responses API counts it."""
    chat = chat or {}
    prompt = int(chat.get("prompt_tokens") or 0)
    completion = int(chat.get("completion_tokens") or 0)
    prompt_details = chat.get("prompt_tokens_details") or {}
    completion_details = chat.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
            "cache_write_tokens": int(prompt_details.get("cache_write_tokens") or 0),
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)},
        "total_tokens": int(chat.get("total_tokens") or prompt + completion),
    }


def _text_part(text: str = "") -> Body:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _summary(text: str) -> Body:
    return {"type": "summary_text", "text": text}


CITE = re.compile(r"\[(\d+)\]")


def citations(text: str, sources: list[Body]) -> list[Body]:
    """A file citation for each ``[n]`` in the text that names one of the sources."""
    by_number = {s["index"]: s for s in sources}
    out = []
    for match in CITE.finditer(text):
        if (source := by_number.get(int(match.group(1)))) is not None:
            name = source.get("content_key") or source["content_id"]
            out.append(
                {"type": "file_citation", "file_id": source["content_id"], "filename": name, "index": match.start()}
            )
    return out


def search_result(source: Body) -> Body:
    """A retrieved memory chunk as a file_search result: the content is the file."""
    attrs = source.get("content_attrs") or {}
    return {
        "attributes": {k: v for k, v in attrs.items() if isinstance(v, str | int | float | bool)},
        "file_id": source["content_id"],
        "filename": source.get("content_key") or source["content_id"],
        "score": source["similarity"],
        "text": source["content"],
    }


class Output:
    """A response's output items in output order.

    Streamed, each kind of delta goes to its item: reasoning to a reasoning item (closed when
    anything else begins), text and refusals to a message (closed when reasoning or a function
    call begins), each tool call by its index to its own function_call item (calls may interleave,
    so they stay open until the end). A kind that comes back after its item was closed opens
    a new item.
    """

    def __init__(self) -> None:
        self.items: list[Body] = []
        self.streamed = False
        self._open: list[int] = []  # output indexes of items not yet done
        self._reasoning: int | None = None
        self._message: int | None = None
        self._parts: dict[int, dict[str, int]] = {}  # message index → part type → content index
        self._calls: dict[int, int] = {}  # the upstream's tool call index → output index
        self.sources: list[Body] = []  # what ``[n]`` citations in the text refer to (file_search)

    def search(self, query: str, sources: list[Body], with_results: bool) -> list[Body]:
        """The file_search_call item for the memory search made before the model ran, and its
        events (it is over by the time the model starts)."""
        self.sources = sources
        results = [search_result(s) for s in sources] if with_results else None
        item: Body = {
            "id": new_id("fs"),
            "type": "file_search_call",
            "status": "in_progress",
            "queries": [query],
            "results": None,
        }
        self.items.append(item)
        index = len(self.items) - 1
        where = {"item_id": item["id"], "output_index": index}
        events = [
            {"type": "response.output_item.added", "output_index": index, "item": _copy(item)},
            {"type": "response.file_search_call.in_progress", **where},
            {"type": "response.file_search_call.searching", **where},
            {"type": "response.file_search_call.completed", **where},
        ]
        item.update(status="completed", results=results)
        events.append({"type": "response.output_item.done", "output_index": index, "item": _copy(item)})
        return events

    # -- whole -------------------------------------------------------------------------

    def whole(self, message: Body, status: str) -> None:
        """All items at once from a finished chat message (a reply that was not streamed)."""
        if isinstance(reasoning := message.get("reasoning_content"), str) and reasoning:
            self.items.append({"id": new_id("rs"), "type": "reasoning", "summary": [_summary(reasoning)]})
        content, refusal, calls = message.get("content"), message.get("refusal"), message.get("tool_calls") or []
        parts: list[Body] = []
        if content or (not calls and not refusal):
            parts.append({**_text_part(content or ""), "annotations": citations(content or "", self.sources)})
        if refusal:
            parts.append({"type": "refusal", "refusal": refusal})
        if parts:
            msg = {"id": new_id("msg"), "type": "message", "status": status, "content": parts, "role": "assistant"}
            self.items.append(msg)
        for call in calls:
            fn = call.get("function") or {}
            self.items.append(
                {
                    "id": new_id("fc"),
                    "type": "function_call",
                    "status": status,
                    "arguments": fn.get("arguments") or "",
                    "call_id": call.get("id") or new_id("call"),
                    "name": fn.get("name") or "",
                }
            )

    # -- streamed ----------------------------------------------------------------------

    def feed(self, delta: Body) -> list[Body]:
        """Take one chunk's delta; return the events it makes (without sequence numbers)."""
        self.streamed = True
        events: list[Body] = []
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(thought, str) and thought:
            if self._reasoning is None:
                events += self._close_message() + self._add_reasoning()
            item = self.items[self._reasoning]  # type: ignore[index]
            item["summary"][0]["text"] += thought
            events.append(
                {
                    "type": "response.reasoning_summary_text.delta",
                    "item_id": item["id"],
                    "output_index": self._reasoning,
                    "summary_index": 0,
                    "delta": thought,
                }
            )
        for kind, value in (("output_text", delta.get("content")), ("refusal", delta.get("refusal"))):
            if isinstance(value, str) and value:
                events += self._close_reasoning()
                events += self._message_delta(kind, value)
        for part in delta.get("tool_calls") or ():
            events += self._close_reasoning() + self._close_message()
            events += self._call_delta(part)
        return events

    def close(self, status: str, fill: bool = True) -> list[Body]:
        """Finish every open item with ``status``; with ``fill``, a reply with no message and no
        call gets an empty message, as a whole reply would. Returns the done events."""
        has_message = any(i["type"] == "message" for i in self.items)
        if fill and not has_message and not self._calls:
            events = self._open_message()
        else:
            events = []
        for index in list(self._open):
            events += self._finish(index, status)
        self._open.clear()
        self._reasoning = self._message = None
        return events

    def _add(self, item: Body) -> tuple[int, Body]:
        self.items.append(item)
        index = len(self.items) - 1
        self._open.append(index)
        return index, {"type": "response.output_item.added", "output_index": index, "item": _copy(item)}

    def _add_reasoning(self) -> list[Body]:
        index, added = self._add({"id": new_id("rs"), "type": "reasoning", "summary": []})
        self._reasoning = index
        item = self.items[index]
        item["summary"].append(_summary(""))
        part_added = {
            "type": "response.reasoning_summary_part.added",
            "item_id": item["id"],
            "output_index": index,
            "summary_index": 0,
            "part": _summary(""),
        }
        return [added, part_added]

    def _open_message(self) -> list[Body]:
        index, added = self._add(
            {"id": new_id("msg"), "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
        )
        self._message = index
        self._parts[index] = {}
        return [added]

    def _message_delta(self, kind: str, value: str) -> list[Body]:
        events = [] if self._message is not None else self._open_message()
        index = self._message
        assert index is not None
        item, parts = self.items[index], self._parts[index]
        if kind not in parts:
            part = _text_part() if kind == "output_text" else {"type": "refusal", "refusal": ""}
            item["content"].append(part)
            parts[kind] = len(item["content"]) - 1
            events.append(
                {
                    "type": "response.content_part.added",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": parts[kind],
                    "part": dict(part),
                }
            )
        content_index = parts[kind]
        part = item["content"][content_index]
        key = "text" if kind == "output_text" else "refusal"
        part[key] += value
        event: Body = {
            "type": "response.output_text.delta" if kind == "output_text" else "response.refusal.delta",
            "item_id": item["id"],
            "output_index": index,
            "content_index": content_index,
            "delta": value,
        }
        if kind == "output_text":
            event["logprobs"] = []
        events.append(event)
        return events

    def _call_delta(self, part: Body) -> list[Body]:
        events: list[Body] = []
        fn = part.get("function") or {}
        key = part.get("index", len(self._calls))
        if key not in self._calls:
            index, added = self._add(
                {
                    "id": new_id("fc"),
                    "type": "function_call",
                    "status": "in_progress",
                    "arguments": "",
                    "call_id": part.get("id") or new_id("call"),
                    "name": fn.get("name") or "",
                }
            )
            self._calls[key] = index
            events.append(added)
        else:
            item = self.items[self._calls[key]]
            if fn.get("name"):
                item["name"] += fn["name"]
        index = self._calls[key]
        item = self.items[index]
        if args := fn.get("arguments"):
            item["arguments"] += args
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "delta": args,
                }
            )
        return events

    def _close_reasoning(self) -> list[Body]:
        if self._reasoning is None:
            return []
        index, self._reasoning = self._reasoning, None
        self._open.remove(index)
        return self._finish(index, "completed")

    def _close_message(self) -> list[Body]:
        if self._message is None:
            return []
        index, self._message = self._message, None
        self._open.remove(index)
        return self._finish(index, "completed")

    def _finish(self, index: int, status: str) -> list[Body]:
        item = self.items[index]
        events: list[Body] = []
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "reasoning":
            text = item["summary"][0]["text"]
            events.append({"type": "response.reasoning_summary_text.done", **where, "summary_index": 0, "text": text})
            events.append(
                {"type": "response.reasoning_summary_part.done", **where, "summary_index": 0, "part": _summary(text)}
            )
        elif item["type"] == "message":
            item["status"] = status
            if not item["content"]:  # an empty reply still has its (empty) text part
                item["content"].append(_text_part())
                events.append(
                    {"type": "response.content_part.added", **where, "content_index": 0, "part": _text_part()}
                )
            for content_index, part in enumerate(item["content"]):
                at = {**where, "content_index": content_index}
                if part["type"] == "output_text":
                    part["annotations"] = citations(part["text"], self.sources)
                    for n, annotation in enumerate(part["annotations"]):
                        added = {"type": "response.output_text.annotation.added", **at, "annotation_index": n}
                        events.append({**added, "annotation": annotation})
                    events.append({"type": "response.output_text.done", **at, "text": part["text"], "logprobs": []})
                else:
                    events.append({"type": "response.refusal.done", **at, "refusal": part["refusal"]})
                events.append({"type": "response.content_part.done", **at, "part": dict(part)})
        elif item["type"] == "function_call":
            item["status"] = status
            events.append({"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]})
        events.append({"type": "response.output_item.done", "output_index": index, "item": _copy(item)})
        return events


def _copy(item: Body) -> Body:
    out = dict(item)
    if isinstance(out.get("content"), list):
        out["content"] = [dict(p) for p in out["content"]]
    if isinstance(out.get("summary"), list):
        out["summary"] = [dict(p) for p in out["summary"]]
    return out


def _status(reply: Reply) -> tuple[str, Body | None]:
    """(status, incomplete_details) for a finished or cut off reply."""
    if reply.cut_off:  # the client left mid-stream: what came so far
        return "incomplete", {"reason": None}
    if reply.finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if reply.finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


class Draft:
    """One response being made: its id, what it repeats of the request, its output."""

    def __init__(self, model: str, echo: Body) -> None:
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.model = model
        self.echo = echo
        self.output = Output()
        self.final: Body | None = None
        self.failure: Body | None = None
        self.closing_events: list[Body] = []  # the done events finishing a stream made
        self.search_query: str | None = None  # set when file_search retrieval runs for this turn
        self.search_results = False  # the file_search_call item lists its results
        self._searched = False

    def searched(self, sources: list[Body]) -> list[Body]:
        """The file_search_call item, once, if a search ran; its events."""
        if self.search_query is None or self._searched:
            return []
        self._searched = True
        return self.output.search(self.search_query, sources, self.search_results)

    def snapshot(self, status: str, **fields: Any) -> Body:
        body: Body = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": self.echo.get("instructions"),
            "max_output_tokens": self.echo.get("max_output_tokens"),
            "max_tool_calls": self.echo.get("max_tool_calls"),
            "model": self.model,
            "output": [],
            **{k: v for k, v in self.echo.items() if k not in ("instructions", "max_output_tokens", "max_tool_calls")},
            "usage": None,
        }
        body.update(fields)
        return body

    def finish(self, reply: Reply) -> Body:
        """The final response object for ``reply``; the same object however often it is asked."""
        if self.final is not None:
            return self.final
        status, incomplete = _status(reply)
        item_status = "completed" if status == "completed" else "incomplete"
        if self.output.streamed:
            self.closing_events = self.output.close(item_status)
        else:
            self.searched(reply.references)
            self.output.whole(reply.message, item_status)
        self.model = reply.model
        extra: Body = {"completed_at": int(time.time())} if status == "completed" else {}
        self.final = self.snapshot(
            status,
            incomplete_details=incomplete,
            output=[_copy(i) for i in self.output.items],
            usage=usage(reply.usage),
            **extra,
        )
        return self.final

    def failed(self, exc: ParleyError) -> Body:
        """The response as ``response.failed`` carries it: what came so far, and the error; the
        same object however often it is asked (the transcript stores it, the encoder sends it)."""
        if self.failure is None:
            self.output.close("incomplete", fill=False)
            code = "rate_limit_exceeded" if exc.status == 429 else "server_error"
            self.failure = self.snapshot(
                "failed", error={"code": code, "message": exc.message}, output=[_copy(i) for i in self.output.items]
            )
        return self.failure
