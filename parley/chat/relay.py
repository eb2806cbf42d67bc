"""Relaying an upstream stream with deadlines and keep-alives.

Every wait for the next item is bounded by three clocks at once: the first-byte (then idle)
gap, the total deadline, and the keep-alive interval. When only the keep-alive interval has
passed, ``PING`` is yielded so the dialect can send an SSE comment; when a deadline passes,
``UpstreamTimeout`` is raised. These fire even when the upstream sends nothing at all, which
no socket read timeout alone would catch for a connection that trickles.

One reader task per stream pulls from the upstream (so a keep-alive can go out while a read
is pending) and one timer per stream watches the clocks. The timer is not moved on every item:
when it fires early (items came meanwhile), it is set again for the new earliest deadline, so
an item costs two futures and no timer or task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from parley.config import Timeouts
from parley.errors import UpstreamTimeout


class _Ping:
    def __repr__(self) -> str:
        return "PING"


PING = _Ping()
_END = object()  # the upstream iterator is exhausted
_NONE = object()  # no item read yet
_TICK = object()  # the timer fired: look at the clocks


class _Reader:
    """Pulls one item ahead from ``chunks`` in its own task; ``want()`` asks for the next."""

    def __init__(self, chunks: AsyncIterator[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.chunks = chunks
        self.item: Any = _NONE  # the item read and not yet taken (or _END)
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[Any] | None = None  # the relay waiting for an item
        self._wanted: asyncio.Future[None] | None = None
        self.task = loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                try:
                    item = await anext(self.chunks)
                except StopAsyncIteration:
                    self._hand(_END)
                    return
                self._wanted = self.loop.create_future()
                self._hand(item)
                await self._wanted
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the relay raises it
            self.error = exc
            self._hand(_END)

    def _hand(self, item: Any) -> None:
        self.item = item
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def take(self) -> Any:
        item, self.item = self.item, _NONE
        if item is not _END and self._wanted is not None:
            self._wanted.set_result(None)
        return item


async def relay(chunks: AsyncIterator[Any], timeouts: Timeouts, ping_interval: float | None) -> AsyncIterator[Any]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    total_deadline = started + timeouts.total
    gap_deadline = started + timeouts.first_byte
    gap_name = "first_byte"
    ping_due = float("inf")
    timer: asyncio.TimerHandle | None = None
    reader = _Reader(chunks, loop)

    # ``fire`` gets itself as its argument to set itself again: named in its own body, it would
    # hold itself in its closure, a reference cycle outliving the stream.
    def fire(again: Callable[[Any], None]) -> None:
        nonlocal timer
        timer = None
        waiter = reader.waiter
        if waiter is None or waiter.done():
            return  # nobody waits: the next wait sets the timer again
        due = min(gap_deadline, total_deadline, ping_due)
        if loop.time() >= due:
            waiter.set_result(_TICK)
        else:  # items came since it was set: the clocks moved on
            timer = loop.call_at(due, again, again)

    try:
        while True:
            if reader.item is _NONE:
                if ping_interval:
                    ping_due = loop.time() + ping_interval
                due = min(gap_deadline, total_deadline, ping_due)
                if timer is None:
                    timer = loop.call_at(due, fire, fire)
                elif due < timer.when():  # (only earlier than it is when a ping is due sooner)
                    timer.cancel()
                    timer = loop.call_at(due, fire, fire)
                reader.waiter = waiter = loop.create_future()
                try:
                    await waiter
                finally:
                    reader.waiter = None
                if reader.item is _NONE:  # the timer, not an item
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
            item = reader.take()
            if item is _END:
                if reader.error is not None:
                    error, reader.error = reader.error, None  # its traceback holds the reader: no cycle
                    raise error
                return
            gap_deadline = loop.time() + timeouts.idle
            gap_name = "idle"
            yield item
    finally:
        if timer is not None:
            timer.cancel()
            timer = None  # a cancelled timer keeps its callback, ``fire``
            # (The timer held ``fire``, whose closure holds ``timer``: a reference cycle that kept
            # the whole stream, its reader, upstream response and buffers, alive until the next
            # full garbage collection, about 30 MB over a burst of 1,000 streams.)
        # Closing the upstream iterator closes its HTTP response: the provider stops at once.
        # Shielded: Starlette cancels this generator through an anyio scope that would otherwise
        # cancel the clean-up too, leaving the upstream connection open and streaming.
        with anyio.CancelScope(shield=True):
            if not reader.task.done():
                reader.task.cancel()
                await asyncio.wait((reader.task,))
            if reader.task.cancelled():
                # Taken off the task and dropped: kept there, the CancelledError's traceback holds
                # the reader's frames and so the reader and the task, a cycle that kept the
                # upstream response and its buffers until the next full garbage collection.
                with contextlib.suppress(asyncio.CancelledError):
                    reader.task.result()
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
