"""An OpenAI-compatible upstream test double that speaks real HTTP.

Its behaviour is chosen by the request's ``model``; it records every request it gets and
when each of its streams ended and why, so tests can see that Parley really cancelled.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

TOOL_CALLS = [
    ("call_a", "get_weather", '{"location": "旧金山"}'),
    ("call_b", "get_time", '{"timezone": "America/Los_Angeles", "format": "24h"}'),
    ("call_c", "calculate", '{"expression": "(2 + 3) * 7 / 5"}'),
]


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.stream_ends: list[dict[str, Any]] = []
        self.embed_delay = 1.2  # seconds the slow-embed model takes on a batch with a [slow] text
        self.slow_let_go = threading.Event()  # cleared while a test holds slow-embed's batches
        self.slow_let_go.set()

    @contextmanager
    def holding_slow_embeds(self) -> Iterator[None]:
        """Within the block slow-embed answers no batch with a [slow] text, however long it
        lasts, so a test can look at the state "while embedding" on a machine of any speed."""
        self.slow_let_go.clear()
        try:
            yield
        finally:
            self.slow_let_go.set()

    def last(self) -> dict[str, Any]:
        return self.requests[-1]


def _last_user(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") in ("user", "tool"):
            c = m.get("content")
            return c if isinstance(c, str) else " ".join(p["text"] for p in c or [] if p.get("type") == "text")
    return ""


def _first_tool_call(body: dict[str, Any]) -> tuple[str, str, str] | None:
    """The one-tool model calls the first tool it is given once per user turn, filling each
    required string parameter with the user's words: (call id, name, arguments)."""
    tools = body.get("tools") or []
    if not tools or (body.get("messages") or [{}])[-1].get("role") != "user":
        return None
    fn = tools[0]["function"]
    params = fn.get("parameters") or {}
    args = {name: _last_user(body) for name in params.get("required") or []}
    return f"call_{len(body['messages'])}", fn["name"], orjson.dumps(args).decode()


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def _sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
# OpenAI's usage with its details: cached prompt tokens and reasoning tokens (model "cached-usage").
DETAILED_USAGE = {
    "prompt_tokens": 20,
    "completion_tokens": 9,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 4, "audio_tokens": 0},
}


def _openai_error(message: str, type_: str, code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


# Models that fail as OpenAI's API fails, with its bodies and headers. The bodies name the
# upstream model and account, as OpenAI's do, so tests can check Parley does not pass them on.
FAILURES: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "fail-401": (
        401,
        _openai_error("Incorrect API key provided: sk-upstr***cret.", "invalid_request_error", "invalid_api_key"),
        {},
    ),
    "fail-404": (
        404,
        _openai_error(
            "The model `fail-404` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        {},
    ),
    "fail-429": (
        429,
        _openai_error(
            "Rate limit reached for fail-429 in organization org-upstream on requests per min (RPM): "
            "Limit 3, Used 3, Requested 1. Please try again in 20s.",
            "requests",
            "rate_limit_exceeded",
        ),
        {"retry-after": "20"},
    ),
    "fail-503": (
        503,
        _openai_error("The engine is currently overloaded, please try again later.", "server_error", None),
        {},
    ),
}


NUL_REPLY = "nul: a\x00b"  # the "nul-reply" model's words: PostgreSQL cannot store NUL


def _failure(model: str) -> Response | None:
    if model not in FAILURES:
        return None
    status, body, headers = FAILURES[model]
    return Response(body, status, headers=headers, media_type="application/json")


def build(rec: Recorder) -> Starlette:
    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        rec.requests.append(body)
        rec.headers.append(dict(request.headers))
        model = body.get("model", "")
        if (failed := _failure(model)) is not None:
            return failed
        if model == "fail-500":
            return Response(orjson.dumps({"error": {"message": "upstream exploded"}}), 500)
        if model == "fail-400":
            return Response(orjson.dumps({"error": {"message": "context_length_exceeded", "type": "x"}}), 400)
        if model == "hang":
            await asyncio.sleep(3600)
        if model == "stalled-body":  # the head and the start of a whole answer, then nothing
            return StreamingResponse(_stalled(), media_type="application/json", headers={"content-length": "200"})
        text = NUL_REPLY if model == "nul-reply" else "echo: " + _last_user(body)
        if not body.get("stream"):
            return _whole(model, body, text)
        return StreamingResponse(_stream(rec, model, body, text), media_type="text/event-stream")

    async def embeddings(request: Request) -> Response:
        body = orjson.loads(await request.body())
        rec.requests.append(body)
        if (failed := _failure(body["model"])) is not None:
            return failed
        if body["model"] == "fail-embed":
            return Response(orjson.dumps({"error": {"message": "embedding backend down"}}), 500)
        if body["model"] == "slow-embed" and "[slow]" in str(body["input"]):
            await asyncio.sleep(rec.embed_delay)  # only texts marked [slow]: queries stay quick
            if not rec.slow_let_go.is_set():
                await asyncio.to_thread(rec.slow_let_go.wait, 120)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0]} for i, t in enumerate(inputs)
        ]
        return Response(
            orjson.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": 3, "total_tokens": 3},
                }
            ),
            media_type="application/json",
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
        ]
    )


async def _stalled():
    yield b'{"id": "chatcmpl-up", "object": "chat.completion", '
    await asyncio.sleep(3600)


def _whole(model: str, body: dict[str, Any], text: str) -> Response:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = "stop"
    if model == "tools" and body.get("tools") and (body.get("messages") or [{}])[-1].get("role") != "tool":
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in TOOL_CALLS
            ],
        }
        finish = "tool_calls"
    if model == "one-tool" and (call := _first_tool_call(body)):
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call[0], "type": "function", "function": {"name": call[1], "arguments": call[2]}}],
        }
        finish = "tool_calls"
    if model == "reasoning":
        message["reasoning_content"] = "thinking about it"
    out: dict[str, Any] = {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if model != "no-usage":
        out["usage"] = DETAILED_USAGE if model == "cached-usage" else USAGE
    else:  # a bare-bones server: no usage, no id, no created
        del out["id"], out["created"]
    return Response(orjson.dumps(out), media_type="application/json")


async def _stream(rec: Recorder, model: str, body: dict[str, Any], text: str):  # noqa: C901 - a script per model
    started = time.monotonic()
    end = {"model": model, "reason": "finished"}
    want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    try:
        yield _sse(_chunk(model, {"role": "assistant", "content": ""}))
        if model == "tools" and (body.get("messages") or [{}])[-1].get("role") != "tool":
            for i, (cid, name, _args) in enumerate(TOOL_CALLS):
                yield _sse(
                    _chunk(
                        model,
                        {
                            "tool_calls": [
                                {"index": i, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
                            ]
                        },
                    )
                )
            # Interleave the three calls' argument fragments, a few characters at a time.
            pieces = [[a[j : j + 4] for j in range(0, len(a), 4)] for _, _, a in TOOL_CALLS]
            for step in range(max(map(len, pieces))):
                for i, parts in enumerate(pieces):
                    if step < len(parts):
                        yield _sse(
                            _chunk(model, {"tool_calls": [{"index": i, "function": {"arguments": parts[step]}}]})
                        )
            yield _sse(_chunk(model, {}, "tool_calls"))
        elif model == "one-tool" and (call := _first_tool_call(body)):
            first = {"index": 0, "id": call[0], "type": "function", "function": {"name": call[1], "arguments": ""}}
            yield _sse(_chunk(model, {"tool_calls": [first]}))
            for j in range(0, len(call[2]), 5):
                yield _sse(_chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": call[2][j : j + 5]}}]}))
            yield _sse(_chunk(model, {}, "tool_calls"))
        elif model == "reasoning":
            for part in ("Let me ", "think."):
                yield _sse(_chunk(model, {"reasoning_content": part}))
            for word in text.split(" "):
                yield _sse(_chunk(model, {"content": word + " "}))
            yield _sse(_chunk(model, {}, "stop"))
        elif model == "silent-stream":
            await asyncio.sleep(3600)
        elif model in ("slow-stream", "endless"):
            for n in range(10_000 if model == "endless" else 4):
                await asyncio.sleep(0.05 if model == "endless" else 0.6)
                yield _sse(_chunk(model, {"content": f"{n} "}))
            yield _sse(_chunk(model, {}, "stop"))
        elif model == "drop":
            yield _sse(_chunk(model, {"content": "partial "}))
            await asyncio.sleep(0.05)
            end["reason"] = "dropped"
            raise ConnectionResetError("the double drops the connection on purpose")
        elif model == "double-usage":
            # vLLM-style continuous usage: cumulative usage on every chunk, plus a final one.
            for n, word in enumerate(text.split(" ")):
                yield _sse(
                    _chunk(
                        model,
                        {"content": word + " "},
                        usage={"prompt_tokens": 11, "completion_tokens": n + 1, "total_tokens": 12 + n},
                    )
                )
            yield _sse(_chunk(model, {}, "stop", usage=USAGE))
        else:
            for word in text.split(" "):
                yield _sse(_chunk(model, {"content": word + " "}))
            yield _sse(_chunk(model, {}, "stop"))
        if want_usage and model not in ("no-usage", "double-usage"):
            yield _sse(
                {
                    "id": "chatcmpl-up",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": model,
                    "choices": [],
                    "usage": DETAILED_USAGE if model == "cached-usage" else USAGE,
                }
            )
        yield b"data: [DONE]\n\n"
    except asyncio.CancelledError:
        end["reason"] = "cancelled"
        raise
    finally:
        end["after"] = time.monotonic() - started
        end["at"] = time.monotonic()
        rec.stream_ends.append(end)
