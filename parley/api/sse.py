"""Server-sent events: encoding, and a response that stops its producer when the client leaves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

PING_LINE = b": ping\n\n"
DONE_LINE = b"data: [DONE]\n\n"


def event(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class SSEResponse(StreamingResponse):
    """Starlette cancels the producer on http.disconnect; the producer's finally blocks close the
    upstream connection, so a client that leaves stops the upstream (and its billing) at once.

    ``on_close`` runs however the response ends, even if the producer never started (a client
    gone before the first byte), so whatever a turn holds (a session lock) is always let go.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        headers: dict[str, str] | None = None,
        on_close: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
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
