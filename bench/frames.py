"""What single frames of the gateway's hot path cost, each measured alone in this process.

    python bench/frames.py [--rounds 7]

CPU time per call (the minimum over ``--rounds`` rounds: on a shared machine the minimum is the
estimate least disturbed by other processes), for the pieces a request or a streamed chunk
passes through, each beside the cheapest way to do the same job:
- a route: FastAPI (what Parley's routes are) vs. a Starlette route in the same app vs. a bare
  ASGI callable, with Parley's middleware;
- the request body: parsing it, and validating it with the ChatRequest model;
- a streamed response: Parley's SSE response (Starlette's StreamingResponse) vs. bare ASGI sends;
- relaying a chunk through parley.chat.relay (deadlines and keep-alive pings) vs. a plain loop;
- rewriting a chunk: orjson parse, set id/model, serialize, SSE frame;
- calling the upstream: parley's OpenAI provider (aiohttp) vs. raw asyncio streams (the floor's
  way), against the instant upstream in a subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import orjson  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from loadgen import arun  # noqa: E402
from stack import BENCH, free_port, wait_up  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from parley.api.entry import Entry  # noqa: E402
from parley.api.limits import BodyLimits  # noqa: E402
from parley.api.sse import event, sse_response  # noqa: E402
from parley.chat.relay import relay  # noqa: E402
from parley.config import ProviderConfig, Timeouts  # noqa: E402
from parley.providers.openai import OpenAIProvider  # noqa: E402

CHUNK = (
    b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench",'
    b'"choices":[{"index":0,"delta":{"content":"w3 "},"finish_reason":null}]}'
)
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one short sentence."}]}'
ROUNDS = 7


async def cpu_us(call: Callable[[], Awaitable[Any]], n: int) -> float:
    """Microseconds of CPU per call: the least over ROUNDS rounds of n calls."""
    for _ in range(max(n // 10, 5)):
        await call()
    best = float("inf")
    for _ in range(ROUNDS):
        t = time.thread_time()
        for _ in range(n):
            await call()
        best = min(best, (time.thread_time() - t) / n * 1e6)
    return best


def scope(path: str, query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
        "headers": [(b"host", b"x"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY)),
                    (b"authorization", b"Bearer sk-0123456789abcdef0123456789abcdef")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": BODY, "more_body": False}


async def stay() -> dict[str, Any]:
    await asyncio.sleep(3600)  # a client that stays connected: what a stream's disconnect listener waits on
    return {"type": "http.disconnect"}


async def discard(message: dict[str, Any]) -> None:
    pass


async def sse_chunks(n: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield b"data: " + CHUNK + b"\n\n"


def app_with_routes() -> FastAPI:
    app = FastAPI()

    @app.post("/fastapi")
    async def fastapi_route(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")

    async def starlette_route(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")

    @app.post("/sse")
    async def sse(request: Request) -> Response:
        return sse_response(sse_chunks(int(request.query_params["n"])))

    app.router.routes.append(Route("/starlette", starlette_route, methods=["POST"]))
    limits = BodyLimits(1 << 24, 1 << 26, ("/v8/files/",))
    app.add_middleware(Entry, limits=limits, routes=[], router=app.router, handlers={}, timed=False)
    return app


async def bare_route(scope: Any, receive: Any, send: Any) -> None:
    body = (await receive())["body"]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def bare_sse(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    async for chunk in sse_chunks(int(scope["query_string"][2:])):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def routes() -> None:
    app = app_with_routes()
    print("a request through a route (Parley's middleware, body read, 1 response):")
    for label, target, path in (("FastAPI route", app, "/fastapi"), ("Starlette route, same app", app, "/starlette"),
                                ("bare ASGI callable", bare_route, "/")):  # fmt: skip
        us = await cpu_us(lambda t=target, p=path: t(scope(p), receive, discard), 3000)
        print(f"  {label:<30}{us:7.1f} us")
    print("a streamed response (SSE), fixed cost and each chunk's:")
    for label, target in (("Parley's SSE response", app), ("bare ASGI sends", bare_sse)):
        one = await cpu_us(lambda t=target: t(scope("/sse", b"n=1"), stay, discard), 1000)
        many = await cpu_us(lambda t=target: t(scope("/sse", b"n=51"), stay, discard), 300)
        print(f"  {label:<30}{one:7.1f} us per response, {(many - one) / 50:5.2f} us per chunk")


async def chunks() -> None:
    async def source(n: int) -> AsyncIterator[Any]:
        for _ in range(n):
            await asyncio.sleep(0)  # the next chunk is not there yet: the reader waits for it
            yield CHUNK

    async def plain() -> None:
        async for _ in source(1000):
            pass

    async def relayed() -> None:
        async for _ in relay(source(1000), Timeouts(), 15.0):
            pass

    base, through = await cpu_us(plain, 20) / 1000, await cpu_us(relayed, 20) / 1000
    print("each streamed chunk:")
    print(f"  relay() (deadlines, pings)    {through - base:7.1f} us over a plain async for")

    async def rewrite() -> None:
        for _ in range(1000):
            c = orjson.loads(CHUNK)
            c["id"], c["model"] = "chatcmpl-abc", "gpt-4o-mini"
            event(c)

    print(f"  parse, set id/model, dump     {await cpu_us(rewrite, 20) / 1000:7.1f} us")


async def upstream_calls(port: int) -> None:
    config = ProviderConfig(name="b", type="openai", base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-b")
    provider = OpenAIProvider(config, Timeouts())
    request = orjson.loads(BODY)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def via_provider() -> None:
        await provider.complete(request)

    async def raw() -> None:
        data = orjson.dumps(request)
        head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        writer.write(head + b"content-length: %d\r\n\r\n" % len(data) + data)
        got = await reader.readuntil(b"\r\n\r\n")
        at = got.lower().index(b"content-length:") + 15
        orjson.loads(await reader.readexactly(int(got[at : got.index(b"\r\n", at)])))

    print("a whole completion from the upstream (client side, syscalls included):")
    print(f"  parley's provider (aiohttp)   {await cpu_us(via_provider, 1000):7.1f} us")
    print(f"  raw asyncio stream            {await cpu_us(raw, 1000):7.1f} us")
    writer.close()
    await provider.aclose()


async def body_checks() -> None:
    from parley.api.common import validate
    from parley.api.openai_schemas import ChatRequest

    async def parse() -> None:
        orjson.loads(BODY)

    async def parse_validate() -> None:
        validate(ChatRequest, orjson.loads(BODY))

    print("the request body (one user message):")
    print(f"  orjson parse                  {await cpu_us(parse, 5000):7.1f} us")
    print(f"  parse + ChatRequest model     {await cpu_us(parse_validate, 5000):7.1f} us")


async def main(port: int) -> None:
    await routes()
    await body_checks()
    await chunks()
    await upstream_calls(port)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ROUNDS = ap.parse_args().rounds
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "instant_upstream:app", "--port", str(port), "--log-level", "warning",
         "--no-access-log", "--timeout-keep-alive", "600"],
        cwd=BENCH,
    )  # fmt: skip
    try:
        wait_up(f"http://127.0.0.1:{port}/", upstream)
        arun(main(port))
    finally:
        upstream.terminate()
        upstream.wait(10)
