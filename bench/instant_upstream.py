"""An instant OpenAI-compatible upstream for benchmarks: a bare ASGI app, no framework.

Answers /v1/chat/completions at once, whole or as a 10-chunk SSE stream (8 words, the finish
chunk, the usage chunk, then [DONE]). The model "long" streams 50 words at once (with the
10-chunk stream, it separates a stream's fixed cost from each chunk's); the model "slow"
streams like a real model instead: 50 word chunks 20 ms apart.

It also answers Anthropic's Messages API at /v1/messages: streamed, the events Anthropic sends
(message_start, content_block_start, 10 text_delta, content_block_stop, message_delta with the
usage, message_stop); whole, one message.
"""

from __future__ import annotations

import asyncio

import orjson

COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the instant upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
    }
)


def _event(delta: dict | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "bench",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        chunk["usage"] = usage
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _stream(words: int) -> list[bytes]:
    return [
        *(_event({"content": f"w{i} "}) for i in range(words)),
        _event({}, "stop"),
        _event(None, usage={"prompt_tokens": 9, "completion_tokens": words, "total_tokens": 9 + words}),
        b"data: [DONE]\n\n",
    ]


CHUNKS = _stream(8)
SLOW_CHUNKS = _stream(50)
SLOW_GAP = 0.02  # seconds between the slow model's chunks


def _sse(event: str, data: dict) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _message(words: int) -> dict:
    return {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [{"type": "text", "text": "".join(f"w{i} " for i in range(words))}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": words},
    }  # fmt: skip


def _anthropic_stream(words: int) -> list[bytes]:
    whole = _message(words)
    start = {**whole, "content": [], "stop_reason": None, "usage": {**whole["usage"], "output_tokens": 1}}
    usage = {k: v for k, v in whole["usage"].items() if k != "input_tokens"}
    return [
        _sse("message_start", {"type": "message_start", "message": start}),
        _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
        *(_sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": f"w{i} "}}) for i in range(words)),
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": usage}),
        _sse("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip


# The same 10 text deltas as the OpenAI stream's chunks (8 words, finish, usage), so both dialects
# stream the same number of pieces.
ANTHROPIC_CHUNKS = _anthropic_stream(10)
ANTHROPIC_MESSAGE = orjson.dumps(_message(10))


async def app(scope, receive, send):  # noqa: ANN001, ANN201 - a bare ASGI callable
    if scope["type"] != "http":
        return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    compact = body.replace(b" ", b"")
    if scope["path"] == "/v1/messages":
        await _anthropic(b'"stream":true' in compact, send)
        return
    if b'"stream":true' in compact:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        if b'"model":"slow"' in compact:
            for chunk in SLOW_CHUNKS:
                await asyncio.sleep(SLOW_GAP)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        else:
            for chunk in SLOW_CHUNKS if b'"model":"long"' in compact else CHUNKS:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(COMPLETION)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": COMPLETION})


async def _anthropic(stream: bool, send) -> None:  # noqa: ANN001 - ASGI send
    kind = b"text/event-stream; charset=utf-8" if stream else b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    for chunk in ANTHROPIC_CHUNKS if stream else (ANTHROPIC_MESSAGE,):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
