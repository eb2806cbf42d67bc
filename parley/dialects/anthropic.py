"""Anthropic's Messages API as a dialect: its requests into the core's OpenAI chat form, and the
core's replies, chunks and errors back into Anthropic's shapes (docs/protocol.md).

Served at ``POST /v1/messages`` so the official ``anthropic`` SDK works against any configured
model. The decoder is strict about what changes meaning (an unknown block type, a server tool)
and lenient about what does not (cache_control, service_tier).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from parley.chat.assemble import MessageBuilder
from parley.chat.turn import Reply
from parley.errors import BadRequest, ParleyError
from parley.wire.common import dump_arguments, tool_arguments

Body = dict[str, Any]
Open = ConfigDict(extra="allow")

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class MessageIn(BaseModel):
    model_config = Open
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class ToolIn(BaseModel):
    model_config = Open
    name: Annotated[str, Field(min_length=1, max_length=128)]
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None


class ToolChoiceIn(BaseModel):
    model_config = Open
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class MessagesRequest(BaseModel):
    """What Parley reads of a Messages API request."""

    model_config = Open
    model: str
    max_tokens: Annotated[int, Field(ge=1)]
    messages: Annotated[list[MessageIn], Field(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = False
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: int | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    metadata: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None


class CountTokensRequest(MessagesRequest):
    max_tokens: Annotated[int, Field(ge=1)] | None = None  # type: ignore[assignment]


_ROLES = ("user", "assistant")
_CHOICES = ("auto", "any", "tool", "none")
_OBJECTS = ("metadata", "thinking", "output_config")


def _dicts(value: Any) -> bool:
    return type(value) is list and all(type(x) is dict for x in value)


def _unit(value: Any) -> bool:
    return value is None or (type(value) in (int, float) and 0 <= value <= 1)


def _tool_choice_ok(choice: Any) -> bool:
    return choice is None or (
        type(choice) is dict
        and choice.get("type") in _CHOICES
        and type(choice.get("name")) in (str, type(None))
        and type(choice.get("disable_parallel_tool_use")) in (bool, type(None))
    )


def _tools_ok(tools: Any) -> bool:
    if tools is None:
        return True
    return _dicts(tools) and all(
        type(t.get("name")) is str
        and 1 <= len(t["name"]) <= 128
        and type(t.get("description")) in (str, type(None))
        and type(t.get("input_schema")) is dict
        and t.get("type") in (None, "custom")
        for t in tools
    )


def plain(raw: Any, counting: bool = False) -> bool:
    """Whether ``raw`` is a request ``MessagesRequest`` (``CountTokensRequest`` when counting)
    takes exactly as it is: every field of the type it declares, nothing to convert. Nearly
    every request is; ``to_chat`` then reads it without the model's validation (about a fifth
    of its cost on a long conversation). Any other request goes through the model, whose 400s
    word what is wrong; this only ever says no where the model might disagree."""
    if type(raw) is not dict or type(raw.get("model")) is not str:
        return False
    max_tokens = raw.get("max_tokens")
    if not (type(max_tokens) is int and max_tokens >= 1) and not (counting and max_tokens is None):
        return False
    messages = raw.get("messages")
    if type(messages) is not list or not messages:
        return False
    for m in messages:
        if type(m) is not dict or m.get("role") not in _ROLES:
            return False
        content = m.get("content")
        if type(content) is not str and not _dicts(content):
            return False
    system, stops, top_k = raw.get("system"), raw.get("stop_sequences"), raw.get("top_k")
    return (
        (system is None or type(system) is str or _dicts(system))
        and (stops is None or (type(stops) is list and all(type(x) is str for x in stops)))
        and type(raw.get("stream")) in (bool, type(None))
        and _unit(raw.get("temperature"))
        and _unit(raw.get("top_p"))
        and (top_k is None or type(top_k) is int)
        and _tools_ok(raw.get("tools"))
        and _tool_choice_ok(raw.get("tool_choice"))
        and all(type(raw.get(k)) in (dict, type(None)) for k in _OBJECTS)
    )


# ---- requests: Anthropic -> the core's OpenAI chat form -------------------------------------


def _image_part(block: Body, where: str) -> Body:
    source = block.get("source") or {}
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
    elif source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise BadRequest(f"{where}.source: an image needs a base64 or url source", param=f"{where}.source")
    return {"type": "image_url", "image_url": {"url": url}}


def _text_of(content: Any, where: str) -> str | list[Body]:
    """A tool result's content: a string, or text and image parts."""
    if isinstance(content, str) or content is None:
        return content or ""
    parts: list[Body] = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block, f"{where}[{i}]"))
        else:
            raise BadRequest(f"{where}[{i}]: unsupported block type {kind!r} in a tool result", param=where)
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _user_messages(content: str | list[Body], where: str) -> list[Body]:
    """One Anthropic user turn: tool results become ``tool`` messages (first, as OpenAI wants
    them right after the assistant's calls), the rest one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[Body] = []
    parts: list[Body] = []
    for i, block in enumerate(content):
        kind = block.get("type")
        at = f"{where}.content[{i}]"
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise BadRequest(f"{at}.tool_use_id: required", param=f"{at}.tool_use_id")
            text = _text_of(block.get("content"), f"{at}.content")
            if block.get("is_error") and isinstance(text, str):
                text = "Error: " + text
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
        elif kind == "document":
            source = block.get("source") or {}
            if source.get("type") != "text":
                raise BadRequest(f"{at}: only text documents are supported", param=at)
            parts.append({"type": "text", "text": str(source.get("data", ""))})
        else:
            raise BadRequest(f"{at}: unsupported content block type {kind!r}", param=f"{at}.type")
    out = list(results)
    if parts:
        simple = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "\n".join(p["text"] for p in parts) if simple else parts})
    return out


def _assistant_message(content: str | list[Body], where: str) -> Body:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[Body] = []
    for i, block in enumerate(content):
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": dump_arguments(block.get("input") or {}),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # the core's upstreams take no signed thinking back
        else:
            raise BadRequest(f"{where}.content[{i}]: unsupported content block type {kind!r}", param=where)
    message: Body = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _system(system: str | list[Body] | None) -> list[Body]:
    if not system:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    text = "\n".join(str(b.get("text", "")) for b in system if b.get("type") == "text")
    return [{"role": "system", "content": text}] if text else []


def _tool_choice(choice: Body | None) -> tuple[Any, bool | None]:
    if choice is None:
        return None, None
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if choice["type"] == "tool":
        if not choice.get("name"):
            raise BadRequest("tool_choice.name: required when type is 'tool'", param="tool_choice.name")
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    return {"auto": "auto", "any": "required", "none": "none"}[choice["type"]], parallel


def to_chat(req: Body) -> tuple[list[Body], Body]:
    """(messages, the rest of the OpenAI request) for the core, from a request ``plain`` accepts
    or the model's dump of one it validated."""
    messages = _system(req.get("system"))
    for i, m in enumerate(req["messages"]):
        where = f"messages[{i}]"
        if m["role"] == "user":
            messages.extend(_user_messages(m["content"], where))
        else:
            messages.append(_assistant_message(m["content"], where))
    params: Body = {"max_tokens": req.get("max_tokens")}
    for name in ("temperature", "top_p"):
        if (value := req.get(name)) is not None:
            params[name] = float(value)  # (as the model gives it)
    if stops := req.get("stop_sequences"):
        params["stop"] = stops
    tools = req.get("tools")
    if tools:
        for i, tool in enumerate(tools):
            if tool.get("type") not in (None, "custom"):
                raise BadRequest(f"tools[{i}]: server tools are not supported", param=f"tools[{i}].type")
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    **({"description": t["description"]} if t.get("description") else {}),
                    "parameters": t["input_schema"],
                },
            }
            for t in tools
        ]
    choice, parallel = _tool_choice(req.get("tool_choice"))
    if choice is not None:
        params["tool_choice"] = choice
    if parallel is not None and tools:
        params["parallel_tool_calls"] = parallel
    user = (req.get("metadata") or {}).get("user_id")
    if isinstance(user, str):
        params["user"] = user
    output = req.get("output_config") or {}
    effort = output.get("effort")
    if isinstance(effort, str):
        params["reasoning_effort"] = {"xhigh": "high", "max": "high"}.get(effort, effort)
    fmt = output.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {"name": "output", "schema": fmt.get("schema") or {}, "strict": True}
        params["response_format"] = {"type": "json_schema", "json_schema": schema}
    return messages, params


# ---- replies: the core -> Anthropic ---------------------------------------------------------


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def usage(openai_usage: Body | None) -> Body:
    """OpenAI usage → Anthropic's: input_tokens leaves out what was read from the cache."""
    u = openai_usage or {}
    cached = int(((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
    out: Body = {
        "input_tokens": max(int(u.get("prompt_tokens") or 0) - cached, 0),
        "output_tokens": int(u.get("completion_tokens") or 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }
    return out


def content_blocks(message: Body) -> list[Body]:
    blocks: list[Body] = []
    if message.get("reasoning_content"):
        blocks.append({"type": "thinking", "thinking": message["reasoning_content"], "signature": ""})
    if message.get("content"):
        text = message["content"]
        if isinstance(text, list):
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "toolu_" + secrets.token_hex(12),
                "name": fn.get("name", ""),
                "input": tool_arguments(fn.get("arguments", "")),
            }
        )
    return blocks


def stop_reason(finish: str | None) -> str | None:
    return STOP_REASONS.get(finish or "", "end_turn") if finish else None


def message_body(reply: Reply, message_id: str) -> Body:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content_blocks(reply.message),
        "stop_reason": stop_reason(reply.finish_reason) or "end_turn",
        "stop_sequence": None,
        "usage": usage(reply.usage),
    }


def error_body(exc: ParleyError) -> Body:
    kind = ERROR_TYPES.get(exc.status, "api_error" if exc.status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": exc.message}}


def sse(name: str, data: Body) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


# The frames a stream repeats, as the bytes ``sse`` makes of them (orjson: compact, keys in
# order), so a text or thinking delta costs one string's encoding: ``_DELTA`` + index + kind +
# the JSON string + ``_END``.
_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT = b',"delta":{"type":"text_delta","text":'
_THINKING = b',"delta":{"type":"thinking_delta","thinking":'
_END = b"}}\n\n"
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


class StreamEncoder:
    """OpenAI chunks → Anthropic's event stream, one content block open at a time.

    Tool calls stream live while they come one after another, as every upstream sends them;
    if an upstream interleaves the arguments of parallel calls, the calls after the open one
    are held and sent whole, in order, when the open one ends.

    ``message_start`` goes out with the upstream's first chunk (with its events, in one write)
    rather than alone before it; the events at the end go out in one write too.
    """

    def __init__(self, model: str) -> None:
        self.headers: dict[str, str] = {}
        self.model = model
        self.message_id = new_message_id()
        self._pending = b""  # message_start, until the first write
        self._index = -1  # the open block's index, -1 before the first
        self._delta_head = b""  # _DELTA and the open block's index
        self._open: str | None = None  # "text" | "thinking" | "tool" | None (closed)
        self._open_call: int | None = None  # the OpenAI index of the open tool call
        self._open_args = False  # the open tool call has had arguments
        self._blocks: dict[int, int] = {}  # OpenAI call index -> its block index, once started
        self._held: dict[int, Body] = {}  # OpenAI index -> {"id", "name", "args"}: not yet sent

    # the Encoder protocol

    def reply(self, reply: Reply) -> Body:
        return message_body(reply, self.message_id)

    def opening(self, references: list[Body]) -> list[bytes]:
        start: Body = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        self._pending = sse("message_start", {"type": "message_start", "message": start})
        return []

    def chunk(self, chunk: Body, builder: MessageBuilder) -> bytes | None:
        out = [self._pending]
        self._pending = b""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if not delta:
                continue
            if thought := delta.get("reasoning_content") or delta.get("reasoning"):
                self._text_block("thinking", _THINKING, thought, out)
            if text := delta.get("content"):
                self._text_block("text", _TEXT, text, out)
            for part in delta.get("tool_calls") or ():
                out += self._tool_part(part)
        return b"".join(out) or None

    def closing(self, reply: Reply) -> list[bytes]:
        out = [self._pending, *self._close(), *self._flush_held()]
        self._pending = b""
        out.append(
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason(reply.finish_reason) or "end_turn", "stop_sequence": None},
                    "usage": usage(reply.usage),
                },
            )
        )
        out.append(_MESSAGE_STOP)
        return [b"".join(out)]

    def error(self, exc: ParleyError) -> bytes:
        out = self._pending + sse("error", error_body(exc))
        self._pending = b""
        return out

    # blocks

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        self._open_call = None
        return [sse("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _start(self, kind: str, block: Body) -> list[bytes]:
        out = self._close()
        self._index += 1
        self._delta_head = _DELTA + str(self._index).encode()
        self._open = kind
        out.append(
            sse("content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block})
        )
        return out

    def _delta(self, delta: Body) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def _text_block(self, kind: str, field: bytes, text: Any, out: list[bytes]) -> None:
        """A text or thinking delta into ``out``, opening its block first if another is open."""
        if self._open != kind:
            if self._open == "tool":
                out += self._flush_held()
            block = (
                {"type": "text", "text": ""}
                if kind == "text"
                else {"type": "thinking", "thinking": "", "signature": ""}
            )
            out += self._start(kind, block)
        out.append(self._delta_head + field + orjson.dumps(text) + _END)

    def _tool_part(self, part: Body) -> list[bytes]:
        index = int(part.get("index", 0))
        fn = part.get("function") or {}
        args = fn.get("arguments") or ""
        if index in self._held:
            self._held[index]["args"] += args
            return []
        if index not in self._blocks:  # the head of a new call
            head = {
                "id": part.get("id") or "toolu_" + secrets.token_hex(12),
                "name": fn.get("name") or "",
                "args": args,
            }
            if self._open == "tool" and not self._open_args:
                self._held[index] = head  # calls announced together: this one waits its turn
                return []
            return self._start_call(index, head)
        if not args:
            return []
        if index == self._open_call:
            self._open_args = True
        # A call already closed (an upstream that went back to it) still gets its arguments,
        # addressed to its own block.
        delta = {"type": "input_json_delta", "partial_json": args}
        return [
            sse("content_block_delta", {"type": "content_block_delta", "index": self._blocks[index], "delta": delta})
        ]

    def _start_call(self, index: int, head: Body) -> list[bytes]:
        block = {"type": "tool_use", "id": head["id"], "name": head["name"], "input": {}}
        out = self._start("tool", block)
        self._blocks[index] = self._index
        self._open_call = index
        self._open_args = bool(head["args"])
        if head["args"]:
            out.append(self._delta({"type": "input_json_delta", "partial_json": head["args"]}))
        return out

    def _flush_held(self) -> list[bytes]:
        out: list[bytes] = []
        for index in sorted(self._held):
            head = self._held.pop(index)
            out += self._start_call(index, head)
        out += self._close()
        return out
