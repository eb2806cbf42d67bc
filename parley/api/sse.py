"""Server-sent events: encoding, and a response that stops its producer when the client leaves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import StreamingResponse

PING_LINE = b": ping\n\n"
DONE_LINE = b"data: [DONE]\n\n"


def event(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def sse_response(body: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> StreamingResponse:
    # Starlette cancels the producer on http.disconnect; the producer's finally blocks close the
    # upstream connection, so a client that leaves stops the upstream (and its billing) at once.
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})},
    )
