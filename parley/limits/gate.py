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

from parley.caller import Caller
from parley.errors import RateLimited
from parley.limits.counters import Counters, Window, minute, period
from parley.limits.quota import Leases, Meters, Slot, Slots, warn
from parley.limits.store import LimitBook, Limits

_SCOPE_NAMES = {"key": "key", "project": "project", "integration": "integration", "user": "end user"}


class Scope:
    """One scope of a caller that has limits, with the names of its shared counters."""

    __slots__ = ("scope", "subject", "limits", "rpm_key", "tpm_key", "spend_key", "streams_key", "spend_window")

    def __init__(self, scope: str, subject: str, limits: Limits) -> None:
        self.scope = scope  # key | project | integration | user
        self.subject = subject  # the id; for users "app_id/user_id"
        self.limits = limits
        base = f"{scope}:{subject}:"
        self.rpm_key = base + "rpm"
        self.tpm_key = base + "tpm"
        self.spend_key = f"{base}spend:{limits.budget_period}"
        self.streams_key = base + "streams"
        self.spend_window: Callable[[float], Window] = functools.partial(period, limits.budget_period)


class Refused(RateLimited):
    """A RateLimited that says which scope and limit refused it (for metrics)."""

    def __init__(self, scope: str, limit: str, message: str, retry_after: float, quota: bool = False) -> None:
        super().__init__(message, retry_after, kind="tokens" if limit == "tpm" else "requests", quota=quota)
        self.scope = scope
        self.limit = limit


class Admission:
    __slots__ = ("gate", "scopes", "taken", "slots")

    def __init__(self, gate: Gate | None, scopes: list[Scope] | None = None) -> None:
        self.gate = gate
        self.scopes: list[Scope] = scopes if scopes is not None else []
        self.taken: list[tuple[str, float]] = []  # rpm counters and their window ends
        self.slots: list[tuple[str, Slot]] = []  # stream slots held, by counter key

    def settle(self, tokens: int, cost: float) -> None:
        """The request ended having used ``tokens`` and ``cost``: charge them, free its slots."""
        if self.gate is None:
            return
        meters = self.gate.meters
        for s in self.scopes:
            if tokens > 0 and s.limits.tpm is not None:
                meters.add(s.tpm_key, tokens, minute)
            if cost > 0 and s.limits.budget_usd is not None:
                meters.add(s.spend_key, cost, s.spend_window)
        if self.slots:
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
            for key, slot in self.slots:
                self.gate.slots.give_back(key, slot)
            self.slots = []


FREE = Admission(None)


class Gate:
    def __init__(self, book: LimitBook, counters: Counters) -> None:
        self.book = book
        self.counters = counters
        self.leases = Leases(counters, minute)
        self.meters = Meters(counters)
        self.slots = Slots(counters)
        self._resolved: dict[tuple[tuple[str, str], ...], tuple[float, list[Scope]]] = {}
        self._refreshing: dict[tuple[tuple[str, str], ...], asyncio.Task[list[Scope]]] = {}

    def _cached(self, subjects: tuple[tuple[str, str], ...]) -> list[Scope] | None:
        """The resolved scopes, when known (a stale entry answers and is read again in the background)."""
        hit = self._resolved.get(subjects)
        if hit is None:
            return None
        if hit[0] <= time.monotonic() and subjects not in self._refreshing:
            task = asyncio.ensure_future(self._resolve(subjects, fresh=True))
            self._refreshing[subjects] = task
            task.add_done_callback(functools.partial(self._refreshed, subjects))
        return hit[1]

    async def scopes(self, caller: Caller) -> list[Scope]:
        """The caller's scopes that have limits. Resolved ones are kept; once older than the
        book's time to live they still answer while a background task reads them again, so no
        request waits for the database for a caller already seen (a change still reaches the
        server within about ``auth_cache_ttl`` seconds)."""
        subjects = tuple(caller.scopes)
        if not subjects:
            return []
        hit = self._cached(subjects)
        return hit if hit is not None else await self._resolve(subjects, fresh=False)

    async def _resolve(self, subjects: tuple[tuple[str, str], ...], fresh: bool) -> list[Scope]:
        # An end user's limits are the integration's defaults for each of its users.
        keys = [(scope, subject.split("/", 1)[0] if scope == "user" else subject) for scope, subject in subjects]
        found = await (self.book.reload(keys) if fresh else self.book.lookup(keys))
        resolved = [Scope(s, subject, lim) for (s, subject), lim in zip(subjects, found, strict=True) if not lim.empty]
        if self.book.ttl > 0:
            if len(self._resolved) >= 10_000:
                self._resolved.clear()  # bounded, whatever callers come
            self._resolved[subjects] = (time.monotonic() + self.book.ttl, resolved)
        return resolved

    def _refreshed(self, subjects: tuple[tuple[str, str], ...], task: asyncio.Task[list[Scope]]) -> None:
        self._refreshing.pop(subjects, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            warn("limits", exc, "the limits last read stand until a read succeeds")
            hit = self._resolved.get(subjects)
            if hit is not None:  # tried again a time to live later, not by every request
                self._resolved[subjects] = (time.monotonic() + self.book.ttl, hit[1])

    def admit_now(self, caller: Caller, streamed: bool, stream_ttl: float) -> Admission | None:
        """Admission without waiting, the common case: the caller's limits are known, its meters
        read, and a unit of each rpm lease and a stream slot at hand here (no shared store is
        asked). None when something must be waited for (``admit`` then); ``Refused`` over a
        spend limit."""
        subjects = tuple(caller.scopes)
        if not subjects:
            return FREE
        scopes = self._cached(subjects)
        if scopes is None:
            return None
        if not scopes:
            return FREE
        stamp, mono = time.time(), time.monotonic()
        meters, leases, slots = self.meters, self.leases, self.slots
        readings: list[tuple[Scope, float | None, float | None]] = []
        for s in scopes:
            lim = s.limits
            if (lim.rpm is not None and not leases.holds(s.rpm_key, stamp)) or (
                streamed and lim.max_streams is not None and not slots.holds(s.streams_key, lim.max_streams, stream_ttl)
            ):
                return None
            spent = used = None
            if lim.budget_usd is not None and (spent := meters.reading(s.spend_key, stamp, mono)) is None:
                return None
            if lim.tpm is not None and (used := meters.reading(s.tpm_key, stamp, mono)) is None:
                return None
            readings.append((s, spent, used))
        for s, spent, used in readings:
            self._refuse_over(s, spent, used, stamp)
        admission = Admission(self, scopes)
        for s in scopes:
            if s.limits.rpm is not None:  # held, checked above: taken here without waiting
                admission.taken.append((s.rpm_key, leases.spend(s.rpm_key, s.limits.rpm)))
            if streamed and s.limits.max_streams is not None:  # held, checked above
                admission.slots.append((s.streams_key, slots.spend(s.streams_key)))
        return admission

    async def admit(self, caller: Caller, streamed: bool, stream_ttl: float) -> Admission:
        scopes = await self.scopes(caller)
        if not scopes:
            return FREE
        admission = Admission(self, scopes)
        try:
            for s in scopes:
                if s.limits.budget_usd is not None:
                    await self.meters.load(s.spend_key, s.spend_window)
                if s.limits.tpm is not None:
                    await self.meters.load(s.tpm_key, minute)
            stamp, mono = time.time(), time.monotonic()
            for s in scopes:
                lim = s.limits
                self._refuse_over(
                    s,
                    self.meters.used(s.spend_key, stamp, mono) if lim.budget_usd is not None else None,
                    self.meters.used(s.tpm_key, stamp, mono) if lim.tpm is not None else None,
                    stamp,
                )
            for s in scopes:
                if s.limits.rpm is not None:
                    key = s.rpm_key
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

    def _refuse_over(self, s: Scope, spent: float | None, used: float | None, stamp: float) -> None:
        """Refused when the budget is spent or the tokens per minute are used up (``spent`` and
        ``used``: what the scope's meters read, None for a limit it does not have)."""
        lim = s.limits
        if spent is not None and lim.budget_usd is not None and spent >= lim.budget_usd:
            end = self.meters.ends(s.spend_key, stamp)
            raise Refused(
                s.scope,
                "budget",
                f"This {_SCOPE_NAMES[s.scope]} has used its budget of ${lim.budget_usd:g} per {lim.budget_period} "
                f"(spent ${spent:.4f}). It renews in {max(1, round(end - stamp))}s.",
                end - stamp,
                quota=True,
            )
        if used is not None and lim.tpm is not None and used >= lim.tpm:
            end = self.meters.ends(s.tpm_key, stamp)
            raise Refused(
                s.scope,
                "tpm",
                f"Rate limit reached for tokens per minute on this {_SCOPE_NAMES[s.scope]}: limit {lim.tpm}, "
                f"used {int(used)}. Please try again in {max(1, round(end - stamp))}s.",
                end - stamp,
            )

    async def _take_slot(self, admission: Admission, s: Scope, limit: int, ttl: float) -> None:
        key = s.streams_key
        try:
            slot = await self.slots.take(key, limit, ttl)
        except Exception as exc:  # noqa: BLE001 - the store failing or late lets requests through
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

    async def drain(self) -> None:
        """Give back the stream slots held here and wait for releases under way (at shutdown);
        stop limit refreshes."""
        for task in list(self._refreshing.values()):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.slots.close()
