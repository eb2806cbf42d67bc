"""An instant OpenAI-compatible upstream for benchmarks: a bare ASGI app, no framework.

Answers /v1/chat/completions at once, whole or as a 10-chunk SSE stream (8 words, the finish
chunk, the usage chunk, then [DONE]). The model "long" streams 50 words at once (with the
10-chunk stream, it separates a stream's fixed cost from each chunk's); the model "slow"
streams like a real model instead: 50 word chunks 20 ms apart.
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
