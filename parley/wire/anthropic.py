"""Anthropic's Messages API <-> OpenAI's chat shapes.

Requests: system and developer messages join into ``system``; images become ``image`` blocks
(data URLs as base64 sources, http(s) URLs as ``url`` sources, which Anthropic fetches
itself); PDFs sent as ``file`` parts become ``document`` blocks; assistant ``tool_calls``
become ``tool_use`` blocks and consecutive ``tool`` messages one user message of
``tool_result`` blocks. ``max_tokens`` is required by Anthropic: 4096 unless the request sets
``max_completion_tokens`` or ``max_tokens``. ``response_format`` ``json_schema`` becomes
Anthropic's structured output (``output_config.format``); ``json_object`` becomes an
instruction appended to the system prompt. ``reasoning_effort`` turns extended thinking on
with a budget; a ``thinking`` object in the request is passed on as it is.

Responses: ``thinking`` blocks become ``reasoning_content``; the blocks themselves (with their
signatures, which Anthropic needs back when thinking and tools are combined) also travel as
``thinking_blocks`` on the message, and are sent back when a later request carries them.
"""

from __future__ import annotations

from typing import Any

from parley.errors import BadRequest, UpstreamError
from parley.wire.common import (
    Body,
    ChunkMaker,
    completion,
    dump_arguments,
    max_output_tokens,
    parse_data_url,
    single_choice,
    stop_sequences,
    system_prompt,
    tool_arguments,
    turns,
    usage,
)

VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
# Extended thinking budgets for OpenAI's reasoning_effort (Anthropic's minimum is 1024).
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}
JSON_HINT = "Respond with one valid JSON object and nothing else."

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# The HTTP status each error type stands for (Anthropic's errors page): an ``error`` event
# inside a stream carries only the type.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


# ---------------------------------------------------------------- request


def _image(url: str, param: str) -> Body:
    if url.startswith("data:"):
        mime, data = parse_data_url(url, param)
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise BadRequest(f"'{param}' must be an http(s) or data: URL.", param=param, code="invalid_value")


def _file(part: Body, param: str) -> Body:
    data = (part.get("file") or {}).get("file_data")
    if not isinstance(data, str) or not data.startswith("data:"):
        raise BadRequest(
            f"'{param}': this model's provider takes files only inline, as a data: URL in 'file.file_data'.",
            param=param,
        )
    mime, payload = parse_data_url(data, param)
    block: Body = {"type": "document", "source": {"type": "base64", "media_type": mime, "data": payload}}
    if (part.get("file") or {}).get("filename"):
        block["title"] = part["file"]["filename"]
    return block


def _blocks(content: Any, param: str) -> list[Body]:
    """A user (or tool) message's content as Anthropic content blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Body] = []
    for j, part in enumerate(content or ()):
        where = f"{param}[{j}]"
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = part.get("text") or part.get("refusal") or ""
            if not text:
                continue
            block: Body = {"type": "text", "text": text}
        elif kind == "image_url":
            block = _image(part["image_url"]["url"], f"{where}.image_url.url")
        elif kind == "file":
            block = _file(part, where)
        else:
            raise BadRequest(f"'{where}': {kind} content is not supported by this model's provider.", param=where)
        if part.get("cache_control"):
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _assistant_blocks(m: Body, i: int) -> list[Body]:
    blocks: list[Body] = [
        dict(b) for b in m.get("thinking_blocks") or () if b.get("type") in ("thinking", "redacted_thinking")
    ]
    blocks += _blocks(m.get("content"), f"messages[{i}].content")
    for call in m.get("tool_calls") or ():
        fn = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": fn.get("name", ""),
                "input": tool_arguments(fn.get("arguments")),
            }
        )
    return blocks


def _tool_result(m: Body, i: int) -> list[Body]:
    content = m.get("content")
    blocks = content if isinstance(content, str) else _blocks(content, f"messages[{i}].content")
    return [{"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": blocks}]


def _messages(messages: list[Body]) -> list[Body]:
    return turns(
        messages,
        user=lambda m, i: _blocks(m.get("content"), f"messages[{i}].content"),
        assistant=_assistant_blocks,
        tool=_tool_result,
        model_role="assistant",
        key="content",
    )


def _tool_choice(body: Body) -> Body | None:
    choice = body.get("tool_choice")
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        picked: Body = {"type": "any"}
    elif isinstance(choice, dict):
        picked = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    else:
        picked = {"type": "auto"}
    if body.get("parallel_tool_calls") is False:
        picked["disable_parallel_tool_use"] = True
    elif choice is None:
        return None
    return picked


def _thinking(body: Body, max_tokens: int, explicit_max: bool) -> tuple[Body | None, int]:
    if isinstance(body.get("thinking"), dict):
        return body["thinking"], max_tokens
    effort = body.get("reasoning_effort")
    if not effort or effort == "none":
        return None, max_tokens
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        raise BadRequest(f"Invalid value for 'reasoning_effort': {effort!r}.", param="reasoning_effort")
    if not explicit_max:
        return {"type": "enabled", "budget_tokens": budget}, max_tokens + budget
    if max_tokens <= 1024:
        raise BadRequest(
            "With 'reasoning_effort', this model's provider needs 'max_completion_tokens' above 1024 "
            "(thinking counts against it).",
            param="max_completion_tokens",
        )
    return {"type": "enabled", "budget_tokens": min(budget, max_tokens - 1)}, max_tokens


def _drop_thinking_for_unsigned_tools(messages: list[Body], thinking: Body | None) -> Body | None:
    """Anthropic refuses thinking when the last assistant turn used tools without its thinking
    blocks (a client that kept only OpenAI's fields): answer without thinking instead."""
    if not thinking or thinking.get("type") == "disabled":
        return thinking
    for m in reversed(messages):
        if m["role"] == "assistant":
            kinds = [b["type"] for b in m["content"]]
            if "tool_use" in kinds and not {"thinking", "redacted_thinking"} & set(kinds):
                return None
            return thinking
    return thinking


def to_request(body: Body) -> Body:
    """An OpenAI chat request as an Anthropic Messages request (``stream`` not set)."""
    single_choice(body)
    messages = body.get("messages") or []
    explicit = max_output_tokens(body)
    out: Body = {"model": body["model"], "messages": _messages(messages)}
    system = system_prompt(messages)
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        system = f"{system}\n\n{JSON_HINT}" if system else JSON_HINT
    elif fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    if system:
        out["system"] = system
    thinking, out["max_tokens"] = _thinking(body, explicit or DEFAULT_MAX_TOKENS, explicit is not None)
    thinking = _drop_thinking_for_unsigned_tools(out["messages"], thinking)
    if thinking:
        out["thinking"] = thinking
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)  # Anthropic's range is 0..1
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if stops := stop_sequences(body):
        out["stop_sequences"] = stops
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    tools = [t["function"] for t in body.get("tools") or () if t.get("type") == "function"]
    if tools:
        out["tools"] = [
            {
                "name": fn["name"],
                **({"description": fn["description"]} if fn.get("description") else {}),
                "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
            }
            for fn in tools
        ]
        if (choice := _tool_choice(body)) is not None:
            out["tool_choice"] = choice
    return out


# ---------------------------------------------------------------- response


def openai_usage(u: Body) -> Body:
    """Anthropic counts cache reads and writes apart from ``input_tokens``; OpenAI's prompt
    tokens include them, with the reads as ``cached_tokens``."""
    read = int(u.get("cache_read_input_tokens") or 0)
    prompt = int(u.get("input_tokens") or 0) + read + int(u.get("cache_creation_input_tokens") or 0)
    thinking = int((u.get("output_tokens_details") or {}).get("thinking_tokens") or 0)
    return usage(prompt, int(u.get("output_tokens") or 0), cached=read, reasoning=thinking)


def finish_reason(stop_reason: str | None) -> str | None:
    return FINISH_REASONS.get(stop_reason, "stop") if stop_reason else None


def from_response(data: Body, created: int | None = None) -> Body:
    """An Anthropic ``message`` as an OpenAI ``chat.completion``."""
    if not isinstance(data.get("content"), list):
        raise UpstreamError("The model provider sent a message without content")
    texts: list[str] = []
    thoughts: list[str] = []
    thinking_blocks: list[Body] = []
    calls: list[Body] = []
    for block in data["content"]:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thoughts.append(block.get("thinking") or "")
            thinking_blocks.append(block)
        elif kind == "redacted_thinking":
            thinking_blocks.append(block)
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": dump_arguments(block.get("input"))},
                }
            )
    message: Body = {"role": "assistant", "content": "".join(texts) if texts or not calls else None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    return completion(
        data.get("id") or "",
        data.get("model") or "",
        message,
        finish_reason(data.get("stop_reason")) or "stop",
        openai_usage(data.get("usage") or {}),
        created,
    )


class StreamTranslator:
    """Anthropic's stream events, fed one at a time, as OpenAI chunks.

    Content blocks are numbered across text, thinking and tool use; OpenAI numbers tool calls
    alone, so each ``tool_use`` block gets the next tool-call index when it starts.
    """

    def __init__(self) -> None:
        self.chunks = ChunkMaker()
        self.usage: Body = {}
        self.done = False
        self.finished = False
        self._tool_index: dict[int, int] = {}
        self._thinking: dict[int, Body] = {}
        self._usage_sent: Body | None = None  # the usage the finish chunk carried

    def feed(self, event: Body) -> list[Body]:
        kind = event.get("type")
        if kind == "content_block_delta":  # (nearly every event: tested first)
            return self._delta(int(event.get("index", 0)), event.get("delta") or {})
        if kind == "message_start":
            message = event.get("message") or {}
            self.chunks.id = message.get("id") or ""
            self.chunks.model = message.get("model") or ""
            self.usage = dict(message.get("usage") or {})
            return [self.chunks.delta({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._start(int(event.get("index", 0)), event.get("content_block") or {})
        if kind == "content_block_stop":
            block = self._thinking.pop(int(event.get("index", 0)), None)
            return [self.chunks.delta({"thinking_blocks": [block]})] if block else []
        if kind == "message_delta":
            # Usage here is cumulative: it replaces what message_start said, field by field.
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            reason = finish_reason((event.get("delta") or {}).get("stop_reason"))
            if reason:
                self.finished = True
                # The usage so far rides on the finish chunk (the chat core takes usage from
                # any chunk): one chunk fewer to relay than a usage chunk of its own.
                chunk = self.chunks.delta({}, reason)
                chunk["usage"] = openai_usage(self.usage)
                self._usage_sent = dict(self.usage)
                return [chunk]
            return []
        if kind == "message_stop":
            self.done = True
            return self._usage_left()
        return []  # ping, and event types newer than this code

    def _usage_left(self) -> list[Body]:
        """A usage chunk, unless the finish chunk already carried this usage."""
        return [] if self.usage == self._usage_sent else [self.chunks.usage(openai_usage(self.usage))]

    def _start(self, index: int, block: Body) -> list[Body]:
        kind = block.get("type")
        if kind == "tool_use":
            n = self._tool_index[index] = len(self._tool_index)
            head = {
                "index": n,
                "id": block.get("id", ""),
                "type": "function",
                "function": {"name": block.get("name", ""), "arguments": ""},
            }
            return [self.chunks.delta({"tool_calls": [head]})]
        if kind == "text" and block.get("text"):
            return [self.chunks.delta({"content": block["text"]})]
        if kind == "thinking":
            self._thinking[index] = {"type": "thinking", "thinking": block.get("thinking") or "", "signature": ""}
            if block.get("thinking"):
                return [self.chunks.delta({"reasoning_content": block["thinking"]})]
        if kind == "redacted_thinking":
            return [self.chunks.delta({"thinking_blocks": [dict(block)]})]
        return []

    def _delta(self, index: int, delta: Body) -> list[Body]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [self.chunks.delta({"content": delta["text"]})] if delta.get("text") else []
        if kind == "input_json_delta" and delta.get("partial_json") and index in self._tool_index:
            piece = {"index": self._tool_index[index], "function": {"arguments": delta["partial_json"]}}
            return [self.chunks.delta({"tool_calls": [piece]})]
        if kind == "thinking_delta" and delta.get("thinking"):
            if index in self._thinking:
                self._thinking[index]["thinking"] += delta["thinking"]
            return [self.chunks.delta({"reasoning_content": delta["thinking"]})]
        if kind == "signature_delta" and index in self._thinking:
            self._thinking[index]["signature"] += delta.get("signature") or ""
        return []

    def end(self) -> list[Body]:
        if not self.finished:
            raise UpstreamError("The model provider ended the stream before the message was complete")
        return [] if self.done else self._usage_left()


# ---------------------------------------------------------------- errors


def error_message(body: Any) -> str | None:
    """The message of Anthropic's ``{"type": "error", "error": {"type", "message"}}``."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    return None


def error_status(body: Any, default: int = 500) -> int:
    """The HTTP status an error (e.g. an ``error`` event inside a stream) stands for."""
    err = body.get("error") if isinstance(body, dict) else None
    kind = err.get("type") if isinstance(err, dict) else None
    return ERROR_STATUS.get(kind or "", default)
