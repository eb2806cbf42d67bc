"""Relaying an upstream stream with deadlines and keep-alives.

Every wait for the next chunk is bounded by three clocks at once: the first-byte (then idle)
gap, the total deadline, and the keep-alive interval. When only the keep-alive interval has
passed, ``PING`` is yielded so the dialect can send an SSE comment; when a deadline passes,
``UpstreamTimeout`` is raised. These fire even when the upstream sends nothing at all, which
no socket read timeout alone would catch for a connection that trickles.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio

from parley.config import Timeouts
from parley.errors import UpstreamTimeout


class _Ping:
    def __repr__(self) -> str:
        return "PING"


PING = _Ping()


async def relay(chunks: AsyncIterator[Any], timeouts: Timeouts, ping_interval: float | None) -> AsyncIterator[Any]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    total_deadline = started + timeouts.total
    gap_deadline = started + timeouts.first_byte
    gap_name = "first_byte"
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(chunks))
            wait = min(gap_deadline, total_deadline) - loop.time()
            if ping_interval:
                wait = min(wait, ping_interval)
            done, _ = await asyncio.wait((pending,), timeout=max(wait, 0.0))
            if not done:
                now = loop.time()
                if now >= total_deadline:
                    raise UpstreamTimeout(
                        f"The upstream did not finish within the total timeout of {timeouts.total:g}s"
                    )
                if now >= gap_deadline:
                    limit = getattr(timeouts, gap_name)
                    what = "sent nothing" if gap_name == "first_byte" else "went silent"
                    raise UpstreamTimeout(f"The upstream {what} for {limit:g}s ({gap_name} timeout)")
                yield PING
                continue
            task, pending = pending, None
            try:
                chunk = task.result()
            except StopAsyncIteration:
                return
            gap_deadline = loop.time() + timeouts.idle
            gap_name = "idle"
            yield chunk
    finally:
        # Closing the upstream iterator closes its HTTP response: the provider stops at once.
        # Shielded: Starlette cancels this generator through an anyio scope that would otherwise
        # cancel the clean-up too, leaving the upstream connection open and streaming.
        with anyio.CancelScope(shield=True):
            if pending is not None:
                pending.cancel()
                await asyncio.wait((pending,))
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
