"""An Anthropic Messages API test double that speaks real HTTP, as api.anthropic.com does.

``POST /v1/messages`` with ``x-api-key`` and ``anthropic-version`` (refused as Anthropic refuses
them when missing), whole or streamed with Anthropic's named SSE events (message_start,
content_block_start/delta/stop, ping, message_delta, message_stop, error). Behaviour is chosen
by the requested ``model``; every request (body and headers) is recorded, and each stream's end
and why (finished or cancelled by the client).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

API_KEY = "sk-ant-test"
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
# Two parallel calls, their arguments streamed in several pieces each.
TOOL_USES = [
    ("toolu_01A09q90qw90lq917835lq9", "get_weather", {"location": "旧金山", "unit": "celsius"}),
    ("toolu_01B18r81rx81mr826724mr8", "get_time", {"timezone": "America/Los_Angeles"}),
]
# Errors as Anthropic's API answers them: (status, error type, message, extra headers).
ERRORS: dict[str, tuple[int, str, str, dict[str, str]]] = {
    "claude-400": (400, "invalid_request_error", "messages.0.content: text content blocks must be non-empty", {}),
    "claude-401": (401, "authentication_error", "invalid x-api-key", {}),
    "claude-403": (403, "permission_error", "Your API key does not have permission to use the specified resource.", {}),
    "claude-404": (404, "not_found_error", "model: claude-404", {}),
    "claude-429": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
        {"retry-after": "7"},
    ),
    "claude-500": (500, "api_error", "Internal server error", {}),
    "claude-529": (529, "overloaded_error", "Overloaded", {}),
}
FINISH = {"claude-max-tokens": "max_tokens", "claude-stop-sequence": "stop_sequence", "claude-refusal": "refusal"}


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.stream_ends: list[dict[str, Any]] = []

    def last(self) -> dict[str, Any]:
        return self.requests[-1]


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}
    return Response(
        orjson.dumps(body), status, media_type="application/json", headers={"request-id": "req_01", **(headers or {})}
    )


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    out = []
    for block in content or ():
        if block.get("type") == "text":
            out.append(block["text"])
        elif block.get("type") == "tool_result":
            result = block.get("content")
            out.append(f"{block['tool_use_id']}={_text_of(result)}")
        elif block.get("type") == "image":
            source = block["source"]
            out.append(f"[image {source['type']} {source.get('media_type') or source.get('url')}]")
    return " ".join(out)


def _usage(model: str, output: int) -> dict[str, Any]:
    if model == "claude-thinking":
        return {
            "input_tokens": 20,
            "cache_creation_input_tokens": 5,
            "cache_read_input_tokens": 100,
            "output_tokens": output,
            "output_tokens_details": {"thinking_tokens": 9},
        }
    return {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": output}


def _blocks(model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The content blocks of the reply."""
    last = (body.get("messages") or [{}])[-1]
    said = _text_of(last.get("content"))
    answered = any(b.get("type") == "tool_result" for b in last.get("content") or () if isinstance(b, dict))
    if model == "claude-tools" and not answered:
        return [
            {"type": "text", "text": "Let me check both."},
            *({"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in TOOL_USES),
        ]
    blocks: list[dict[str, Any]] = []
    if model == "claude-thinking":
        blocks.append({"type": "thinking", "thinking": "The user wants an echo. Easy.", "signature": SIGNATURE})
    blocks.append({"type": "text", "text": ("results: " if answered else "echo: ") + said})
    return blocks


def _message(model: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else FINISH.get(model, "end_turn")
    return {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": "END" if stop == "stop_sequence" else None,
        "usage": _usage(model, 17),
    }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def _events(rec: Recorder, model: str, blocks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    end: dict[str, Any] = {"model": model, "reason": "finished"}
    try:
        whole = _message(model, blocks)
        start = {**whole, "content": [], "stop_reason": None, "stop_sequence": None, "usage": _usage(model, 1)}
        yield _sse("message_start", {"type": "message_start", "message": start})
        yield _sse("ping", {"type": "ping"})
        if model == "claude-endless":
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            for n in range(100_000):
                await asyncio.sleep(0.05)
                delta = {"type": "text_delta", "text": f"{n} "}
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        for index, block in enumerate(blocks):
            if block["type"] == "tool_use":
                head = {**block, "input": {}}
                yield _sse(
                    "content_block_start", {"type": "content_block_start", "index": index, "content_block": head}
                )
                args = orjson.dumps(block["input"]).decode()
                for piece in ["", *_pieces(args, 7)]:
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            elif block["type"] == "thinking":
                head = {"type": "thinking", "thinking": "", "signature": ""}
                yield _sse(
                    "content_block_start", {"type": "content_block_start", "index": index, "content_block": head}
                )
                for piece in _pieces(block["thinking"], 12):
                    delta = {"type": "thinking_delta", "thinking": piece}
                    yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                delta = {"type": "signature_delta", "signature": block["signature"]}
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            else:
                head = {"type": "text", "text": ""}
                yield _sse(
                    "content_block_start", {"type": "content_block_start", "index": index, "content_block": head}
                )
                for piece in _pieces(block["text"], 5):
                    delta = {"type": "text_delta", "text": piece}
                    yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                if model == "claude-drop":
                    end["reason"] = "dropped"
                    raise ConnectionResetError("the double drops the connection on purpose")
                if model == "claude-midstream":
                    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
                    yield _sse("error", error)
                    return
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        delta = {"stop_reason": whole["stop_reason"], "stop_sequence": whole["stop_sequence"]}
        usage = {k: v for k, v in whole["usage"].items() if k != "input_tokens"}
        yield _sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        yield _sse("message_stop", {"type": "message_stop"})
    except asyncio.CancelledError:
        end["reason"] = "cancelled"
        raise
    finally:
        rec.stream_ends.append(end)


async def _split(events: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """The same stream with CRLF line ends, sent in small pieces that cut lines and events."""
    data = b"".join([e async for e in events]).replace(b"\n", b"\r\n")
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await asyncio.sleep(0.001)  # apart, so most pieces reach the client in reads of their own


def build(rec: Recorder) -> Starlette:
    async def messages(request: Request) -> Response:
        body = orjson.loads(await request.body())
        rec.requests.append(body)
        rec.headers.append(dict(request.headers))
        # Anthropic takes the key as x-api-key or (as its newer SDKs send it) a Bearer token.
        if API_KEY not in (request.headers.get("x-api-key"), request.headers.get("authorization", "")[7:]):
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        if not isinstance(body.get("max_tokens"), int):
            return _error(400, "invalid_request_error", "max_tokens: Field required")
        model = body.get("model", "")
        if model in ERRORS:
            status, kind, message, headers = ERRORS[model]
            return _error(status, kind, message, headers)
        if model == "claude-hang":
            await asyncio.sleep(3600)
        blocks = _blocks(model, body)
        if not body.get("stream"):
            return Response(orjson.dumps(_message(model, blocks)), media_type="application/json")
        events = _events(rec, model, blocks)
        return StreamingResponse(
            _split(events, 7) if model == "claude-split" else events,
            media_type="text/event-stream; charset=utf-8",
            headers={"cache-control": "no-cache", "request-id": "req_01"},
        )

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])
