"""Server-sent events: encoding, and a response that stops its producer when the client leaves."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

PING_LINE = b": ping\n\n"
DONE_LINE = b"data: [DONE]\n\n"

log = logging.getLogger("parley.sse")


def event(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class SSEResponse(Response):
    """An event stream as a plain ASGI response: the producer runs in the request's own task and
    one watcher task waits for the client to leave. When it does, the producer is cancelled at
    once; its finally blocks close the upstream connection, so a client that leaves stops the
    upstream (and its billing) at once. That end is logged once, as information: nothing failed.

    ``on_close`` runs however the response ends, even if the producer never started (a client
    gone before the first byte), so whatever a turn holds (a session lock) is always let go.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        body: AsyncIterator[bytes],
        headers: dict[str, str] | None = None,
        on_close: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        # Response.__init__ is not called: it would render a body this response never has.
        self.status_code = 200
        self.background = None
        self.body_iterator = body
        self._on_close = on_close
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        streaming = True  # the watcher cancels the producer only while this holds
        left = False

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            if streaming:
                left = True
                task.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            streaming = False
        except asyncio.CancelledError:
            streaming = False
            if not left:
                raise
            task.uncancel()  # the cancellation was this response's own: the request ends normally
            log.info("client left mid-stream", extra={"fields": {"path": scope.get("path", "")}})
        finally:
            streaming = False
            watcher.cancel()
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
                if self._on_close is not None:
                    await self._on_close()


def sse_response(
    body: AsyncIterator[bytes],
    headers: dict[str, str] | None = None,
    on_close: Callable[[], Awaitable[Any]] | None = None,
) -> SSEResponse:
    return SSEResponse(body, headers, on_close)
