"""A small time-bounded cache of verified keys, so the hot path skips the database.

Revocation reaches a running server within ``ttl`` seconds (``auth_cache_ttl``); 0 disables it.

``get_or_load`` is what verifiers use, and it never lets many requests wait on the database for
one key: concurrent misses share one lookup, and a key in use is looked up again in the
background once half its ``ttl`` has passed, so under steady traffic no request waits at all.
(Without this, every ``ttl`` all in-flight requests missed at once and queued for the database
connection pool together: the gateway's worst latency spikes.) An entry is trusted only until
``ttl`` after the lookup that produced it began, so a refresh never stretches the revocation delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any, Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("parley.auth")


class TTLCache(Generic[T]):
    def __init__(self, ttl: float, max_items: int = 10_000) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._items: dict[str, tuple[float, T]] = {}  # key -> (expires at, value)
        self._loading: dict[str, asyncio.Task[T | None]] = {}

    def get(self, key: str) -> T | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[0] < monotonic():
            self._items.pop(key, None)
            return None
        return hit[1]

    def put(self, key: str, value: T) -> None:
        self._store(key, value, monotonic() + self.ttl)

    def _store(self, key: str, value: T, expires: float) -> None:
        if self.ttl <= 0:
            return
        if len(self._items) >= self.max_items:
            self._items.clear()  # crude, but bounded: memory stays flat whatever clients send
        self._items[key] = (expires, value)

    def clear(self) -> None:
        self._items.clear()

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[T | None]]) -> T | None:
        """The cached value, else what ``load`` returns (None: not valid, and not cached)."""
        if self.ttl <= 0:
            return await load()  # no cache: every call reads the database, and alone
        now = monotonic()
        hit = self._items.get(key)
        if hit is not None and now < hit[0]:
            if now >= hit[0] - self.ttl / 2 and key not in self._loading:
                self._start(key, load, background=True)  # refresh ahead; this request goes on with the entry
            return hit[1]
        pending = self._loading.get(key) or self._start(key, load, background=False)
        # Shielded: a caller that goes away must not cancel the lookup others wait on.
        return await asyncio.shield(pending)

    def _start(self, key: str, load: Callable[[], Awaitable[T | None]], background: bool) -> asyncio.Task[T | None]:
        task = asyncio.get_running_loop().create_task(self._load(key, load))
        self._loading[key] = task
        task.add_done_callback(_log_failure if background else _retrieve)
        return task

    async def _load(self, key: str, load: Callable[[], Awaitable[T | None]]) -> T | None:
        started = monotonic()
        try:
            value = await load()
        finally:
            self._loading.pop(key, None)
        if value is None:
            self._items.pop(key, None)  # revoked or unknown: the next request asks again
        else:
            self._store(key, value, started + self.ttl)
        return value


def _log_failure(task: asyncio.Task[Any]) -> None:
    # A failed refresh nobody awaits: the entry simply expires on time, and the next request
    # that needs it looks it up again (and gets the error itself if the database is still down).
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("background key lookup failed: %s", exc, exc_info=exc)


def _retrieve(task: asyncio.Task[Any]) -> None:
    # The waiters got the error already (or all left): keep asyncio from reporting it again.
    if not task.cancelled():
        task.exception()
