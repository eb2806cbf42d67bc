"""Admission: may this caller start one more request? Checked before anything is stored or any
upstream is called, so a refused request changes nothing.

Every scope of the caller (its key, project or integration, and the end user) is checked:
spend budgets and tokens per minute against what was used so far, then requests per minute
(which counts this request), then, for streams, a concurrency slot. A refusal gives back what
the earlier checks took. What a request used is charged when it ends (``Admission.settle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from parley.caller import Caller
from parley.errors import RateLimited
from parley.limits.counters import Counters, Window, minute, period
from parley.limits.quota import TIMEOUT, Leases, Meters, warn
from parley.limits.store import LimitBook, Limits

_SCOPE_NAMES = {"key": "key", "project": "project", "integration": "integration", "user": "end user"}


@dataclass(frozen=True, slots=True)
class Scope:
    scope: str  # key | project | integration | user
    subject: str  # the id; for users "app_id/user_id"
    limits: Limits

    def counter(self, what: str) -> str:
        return f"{self.scope}:{self.subject}:{what}"

    @property
    def spend_counter(self) -> str:
        return self.counter(f"spend:{self.limits.budget_period}")


class Refused(RateLimited):
    """A RateLimited that says which scope and limit refused it (for metrics)."""

    def __init__(self, scope: str, limit: str, message: str, retry_after: float, quota: bool = False) -> None:
        super().__init__(message, retry_after, kind="tokens" if limit == "tpm" else "requests", quota=quota)
        self.scope = scope
        self.limit = limit


def _spend_window(name: str) -> Callable[[float], Window]:
    return functools.partial(period, name)


@dataclass
class Admission:
    gate: Gate | None
    scopes: list[Scope] = field(default_factory=list)
    taken: list[tuple[str, float]] = field(default_factory=list)  # rpm counters and their window ends
    slots: list[tuple[str, str]] = field(default_factory=list)  # stream slots held

    def settle(self, tokens: int, cost: float) -> None:
        """The request ended having used ``tokens`` and ``cost``: charge them, free its slots."""
        if self.gate is None:
            return
        for s in self.scopes:
            if s.limits.tpm is not None:
                self.gate.meters.add(s.counter("tpm"), tokens, minute)
            if s.limits.budget_usd is not None:
                self.gate.meters.add(s.spend_counter, cost, _spend_window(s.limits.budget_period))
        self._free_slots()

    def cancel(self) -> None:
        """The request was refused after all (bad input): nothing is charged."""
        if self.gate is None:
            return
        for key, window_end in self.taken:
            self.gate.leases.give_back(key, window_end)
        self.taken.clear()
        self._free_slots()

    def _free_slots(self) -> None:
        if self.slots and self.gate is not None:
            self.gate.release(self.slots)
            self.slots = []


FREE = Admission(None)


class Gate:
    def __init__(self, book: LimitBook, counters: Counters) -> None:
        self.book = book
        self.counters = counters
        self.leases = Leases(counters, minute)
        self.meters = Meters(counters)
        self._releasing: set[asyncio.Task[None]] = set()

    async def scopes(self, caller: Caller) -> list[Scope]:
        subjects = caller.scopes
        if not subjects:
            return []
        # An end user's limits are the integration's defaults for each of its users.
        keys = [(scope, subject.split("/", 1)[0] if scope == "user" else subject) for scope, subject in subjects]
        found = await self.book.lookup(keys)
        return [Scope(s, subject, lim) for (s, subject), lim in zip(subjects, found, strict=True) if not lim.empty]

    async def admit(self, caller: Caller, streamed: bool, stream_ttl: float) -> Admission:
        scopes = await self.scopes(caller)
        if not scopes:
            return FREE
        admission = Admission(self, scopes)
        try:
            for s in scopes:
                await self._check_spend(s)
            for s in scopes:
                if s.limits.rpm is not None:
                    key = s.counter("rpm")
                    wait = await self.leases.take(key, s.limits.rpm)
                    if wait is not None:
                        raise Refused(
                            s.scope,
                            "rpm",
                            f"Rate limit reached for requests per minute on this {_SCOPE_NAMES[s.scope]}: "
                            f"limit {s.limits.rpm}. Please try again in {max(1, round(wait))}s.",
                            wait,
                        )
                    admission.taken.append((key, self.leases.window_end(key)))
            if streamed:
                for s in scopes:
                    if s.limits.max_streams is not None:
                        await self._take_slot(admission, s, s.limits.max_streams, stream_ttl)
        except BaseException:
            admission.cancel()
            raise
        return admission

    async def _check_spend(self, s: Scope) -> None:
        lim = s.limits
        if lim.budget_usd is not None:
            spent, end = await self.meters.total(s.spend_counter, _spend_window(lim.budget_period))
            if spent >= lim.budget_usd:
                raise Refused(
                    s.scope,
                    "budget",
                    f"This {_SCOPE_NAMES[s.scope]} has used its budget of ${lim.budget_usd:g} per {lim.budget_period} "
                    f"(spent ${spent:.4f}). It renews in {max(1, round(end - time.time()))}s.",
                    end - time.time(),
                    quota=True,
                )
        if lim.tpm is not None:
            used, end = await self.meters.total(s.counter("tpm"), minute)
            if used >= lim.tpm:
                raise Refused(
                    s.scope,
                    "tpm",
                    f"Rate limit reached for tokens per minute on this {_SCOPE_NAMES[s.scope]}: limit {lim.tpm}, "
                    f"used {int(used)}. Please try again in {max(1, round(end - time.time()))}s.",
                    end - time.time(),
                )

    async def _take_slot(self, admission: Admission, s: Scope, limit: int, ttl: float) -> None:
        key = s.counter("streams")
        try:
            async with asyncio.timeout(TIMEOUT):
                slot = await self.counters.acquire_slot(key, limit, ttl)
        except Exception as exc:  # noqa: BLE001 - the store failing lets requests through
            warn("streams", exc)
            return
        if slot is None:
            raise Refused(
                s.scope,
                "streams",
                f"Too many concurrent streams on this {_SCOPE_NAMES[s.scope]}: limit {limit}. "
                "Please try again when one has finished.",
                1,
            )
        admission.slots.append((key, slot))

    def release(self, slots: list[tuple[str, str]]) -> None:
        """Off the request path: the slots go back in a task of their own."""
        task = asyncio.ensure_future(self._release(slots))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _release(self, slots: list[tuple[str, str]]) -> None:
        for key, slot in slots:
            try:
                async with asyncio.timeout(TIMEOUT):
                    await self.counters.release_slot(key, slot)
            except Exception as exc:  # noqa: BLE001 - the slot then expires on its own
                warn("release", exc)

    async def drain(self) -> None:
        """Wait for slot releases under way (at shutdown)."""
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._releasing, return_exceptions=True)
