"""Accounting for every request of every dialect: limits before it, usage and metrics after.

The chat turn, ``/v1/embeddings`` and v8 title generation call it with the ``Caller``;
nothing here knows a wire format. ``admit`` refuses a caller over a limit or budget with a 429
(``RateLimited``) before anything is stored or any upstream is called, and otherwise hands
out a ``Ticket``. The ticket is finished exactly once, however the request ends (whole,
streamed, failed, cut off by a leaving client); finishing charges tokens and spend to the
caller's limits, moves the metrics and queues the usage row. A background task writes the
queued rows in batches and syncs the shared limit counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley import metrics
from parley.caller import Caller
from parley.config import Settings
from parley.errors import ParleyError
from parley.limits.counters import Counters, DatabaseCounters
from parley.limits.gate import FREE, Admission, Gate, Refused
from parley.limits.store import LimitBook
from parley.usage.record import Prices, UsageRow, new_tuple, tokens_of
from parley.usage.writer import UsageWriter

if TYPE_CHECKING:
    from parley.providers.routing import Route, Router

log = logging.getLogger("parley.accounting")

CLIENT_LEFT = "client_disconnected"
STREAM_SLACK = 60.0  # seconds a stream slot outlives the provider's total timeout (storing the reply…)


class Ticket:
    """One admitted request, until it is finished."""

    __slots__ = (
        "_acc",
        "caller",
        "admission",
        "model",
        "provider",
        "upstream_model",
        "deployment",
        "streamed",
        "usage",
        "_started",
        "_created",
        "_first",
        "_streaming",
        "done",
    )

    def __init__(
        self,
        acc: Accounting,
        caller: Caller,
        admission: Admission,
        model: str,
        provider: str | None,
        upstream_model: str | None,
        streamed: bool,
    ) -> None:
        self._acc = acc
        self.caller = caller
        self.admission = admission
        self.model = model
        self.provider = provider
        self.upstream_model = upstream_model
        self.deployment = provider  # until ``answered_by`` names the deployment that answered
        self.streamed = streamed
        self.usage: Any = None  # what a one-off call (``Accounting.call``) reports before it ends
        self._started = time.perf_counter()
        self._created = time.time()
        self._first: float | None = None
        self._streaming = False
        self.done = False

    def no_model(self) -> None:
        """The reply is a configured message: no provider is called."""
        self.provider = self.upstream_model = self.deployment = None

    def answered_by(self, route: Route) -> None:
        """The deployment that answered (routing may have tried others first)."""
        self.provider = route.provider.name
        self.upstream_model = route.upstream_model
        self.deployment = route.deployment

    def stream_opened(self) -> None:
        self._streaming = True
        if self._acc.metrics:
            metrics.stream_opened()

    def first_token(self) -> None:
        if self._first is None:
            self._first = time.perf_counter()

    def finish(
        self, status: int = 200, usage: Any = None, error_code: str | None = None, upstream_failed: bool = False
    ) -> None:
        """Record the request (once: later calls do nothing)."""
        if self.done:
            return
        self.done = True
        elapsed = time.perf_counter() - self._started
        first = self._first - self._started if self._first is not None else None
        acc = self._acc
        if acc.writer is None and not acc.metrics and self.admission.gate is None:
            return  # nothing to count for
        tokens = tokens_of(usage)
        cost = acc.prices.cost(self.model, tokens)
        self.admission.settle(tokens.total, cost)
        if acc.metrics:
            if self._streaming:
                metrics.stream_closed()
            metrics.request_done(self.caller.dialect, self.model, status, elapsed, first, tokens)
            if upstream_failed and self.provider is not None:
                metrics.upstream_error(self.provider)
        if acc.writer is not None:
            c = self.caller
            acc.writer.put(
                new_tuple(
                    UsageRow,
                    (
                        self._created,
                        c.request_id,
                        c.kind,
                        c.key_id,
                        c.project_id,
                        c.app_id,
                        c.user_id,
                        c.dialect,
                        self.model,
                        self.provider,
                        self.deployment,
                        self.upstream_model,
                        tokens.prompt,
                        tokens.completion,
                        tokens.cached,
                        tokens.reasoning,
                        cost,
                        elapsed * 1000,
                        first * 1000 if first is not None else None,
                        status,
                        error_code,
                        self.streamed,
                    ),
                )
            )

    def fail(self, exc: BaseException, upstream: bool, usage: Any = None, answered: bool = False) -> None:
        """The request ended in ``exc``. ``upstream``: it came from calling the model;
        ``answered``: a reply had been made (whatever failed came after)."""
        if self.done:
            return
        if isinstance(exc, ParleyError):
            if exc.status < 500 and not upstream and not answered:
                self.cancel()  # the request's own fault, found before any model was called
                return
            self.finish(exc.status, usage, exc.code or exc.type, upstream_failed=upstream)
        elif isinstance(exc, Exception):
            self.finish(500, usage, "server_error")
        else:  # cancelled: the client left before the reply was ready
            self.finish(499, usage, CLIENT_LEFT)

    def cancel(self) -> None:
        """Not a request after all (bad input): no row, nothing charged."""
        if self.done:
            return
        self.done = True
        self.admission.cancel()
        if self._streaming and self._acc.metrics:
            metrics.stream_closed()


class Accounting:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession] | None,
        counters: Counters | None = None,
    ) -> None:
        self.prices = Prices(settings)
        self.metrics = settings.metrics
        self.interval = settings.usage_flush_interval
        self.writer: UsageWriter | None = None
        self.gate: Gate | None = None
        self.counters = counters
        if sessions is not None:
            if settings.usage_recording:
                self.writer = UsageWriter(sessions, settings.usage_retention_days)
            if self.counters is None:
                self.counters = DatabaseCounters(sessions)
            self.gate = Gate(LimitBook(sessions, settings.auth_cache_ttl), self.counters)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def disabled(cls) -> Accounting:
        """No database: no usage rows and no limits (metrics still move)."""
        return cls(Settings(), None)

    @classmethod
    def from_settings(cls, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> Accounting:
        counters: Counters | None = None
        if settings.redis_url:
            from parley.limits.redis_counters import RedisCounters  # only servers that use Redis need it

            counters = RedisCounters(settings.redis_url)
        return cls(settings, sessions, counters)

    # -- admission ------------------------------------------------------------------------

    async def admit(
        self,
        caller: Caller,
        model: str,
        provider: str | None,
        upstream_model: str | None,
        streamed: bool = False,
        stream_ttl: float = 600.0 + STREAM_SLACK,
    ) -> Ticket:
        """A ticket for one request, or ``RateLimited`` (429) when a limit or budget says no."""
        admission = FREE
        if self.gate is not None:
            try:
                found = self.gate.admit_now(caller, streamed, stream_ttl)
                admission = found if found is not None else await self.gate.admit(caller, streamed, stream_ttl)
            except Refused as exc:
                if self.metrics:
                    metrics.rate_limited(caller.dialect, model, exc.scope, exc.limit)
                raise
        return Ticket(self, caller, admission, model, provider, upstream_model, streamed)

    async def admit_chat(self, caller: Caller, route: Route, streamed: bool) -> Ticket:
        stream_ttl = route.timeouts.total + STREAM_SLACK
        return await self.admit(
            caller, route.public_name, route.provider.name, route.upstream_model, streamed, stream_ttl
        )

    @asynccontextmanager
    async def call(self, caller: Caller, route: Route) -> AsyncIterator[Ticket]:
        """One whole model call (v8 titles): set ``ticket.usage`` to the upstream's usage."""
        ticket = await self.admit_chat(caller, route, streamed=False)
        try:
            yield ticket
        except BaseException as exc:
            ticket.fail(exc, upstream=True)
            raise
        ticket.finish(200, ticket.usage)

    @asynccontextmanager
    async def embedding(self, caller: Caller, router: Router, model: str) -> AsyncIterator[Ticket]:
        """One embeddings request: set ``ticket.usage`` to ``{"prompt_tokens": n}``."""
        router.check_embedding(model)  # an unknown model is bad input: refused before it counts
        route = router.routes.get(model)
        provider = route.provider.name if route is not None else "local"
        ticket = await self.admit(caller, model, provider, route.upstream_model if route is not None else model)
        try:
            yield ticket
        except BaseException as exc:
            ticket.fail(exc, upstream=True)
            raise
        ticket.finish(200, ticket.usage)

    # -- the background task ----------------------------------------------------------------

    def start(self) -> None:
        metrics.reap_dead_workers()
        self._task = asyncio.create_task(self._run(), name="parley-accounting")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.sync()

    async def sync(self) -> None:
        """Write the queued usage rows; flush and refresh the shared limit counters."""
        if self.metrics:
            metrics.flush()
        try:
            if self.writer is not None:
                await self.writer.flush()
                await self.writer.expire()
            if self.gate is not None:
                await self.gate.meters.sync()
                self.gate.leases.prune()
                self.gate.slots.sweep()
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("accounting sync failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                if self.gate is not None:
                    await self.gate.drain()
                await self.sync()  # what the last requests used
                if self.writer is not None:
                    await self.writer.aclose()
        if self.counters is not None:
            await self.counters.aclose()
        metrics.worker_stopped()
