"""This process's share of the shared counters, so most requests need no round trip.

``Leases`` (requests per minute): quota is leased from the shared counter and spent locally.
A lease asks for what the requests waiting in this process need, plus a spare share sized to
the headroom left (1/``SPREAD`` of it), so far from the limit one round trip serves many
requests, and near it (a spare of 0) every grant is exactly what is used: the shared count
never passes the limit, and no process sits on quota another one is refused. Concurrent
requests that find the lease empty wait for one grant together.

``Slots`` (concurrent streams): slots are leased the same way. A stream takes a slot this
process holds; when it ends the slot stays here for the next stream while this process holds
fewer spares than 1/``SPREAD`` of the headroom it last saw, ``MAX_SPARE`` at most (none near
the limit, where every slot goes straight back, so the shared count is exact there). Spares go
back once nobody took one for ``IDLE`` seconds: traffic that pauses between bursts finds them
still here, and a process holds no more than 1/``SPREAD`` of the headroom idle, for that long.
A slot granted ``SHELF`` seconds ago or more goes back too: a slot lapses in the shared store at
a fixed time, and the stream that takes it must end well before.

``Meters`` (tokens per minute, spend per day or month): what a request used is only known when
it ends, so it is added locally and flushed to the shared counter with the usage batch; the
reply tells the new total. A request is admitted while the total (shared, as last seen, plus
what this process has not flushed yet) is under the limit; totals not refreshed by a flush
are re-read in the background every sync.

A call to the shared store is never cancelled half way: cancelling a SQLite write makes
SQLAlchemy wait for the statement anyway (up to the busy timeout), and a change cancelled after
it was made would be counted again or lost. Each call is bounded by its own driver (SQLite's busy
timeout, PostgreSQL's statement timeout, Redis's socket timeout). A request waits for one at
most ``TIMEOUT`` seconds from the call's start and is then let through; the call's outcome is
applied when it lands, once (a grant first pays for the requests let through meanwhile).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from parley.limits.counters import Counters, Window

T = TypeVar("T")
Slot = tuple[str, float]  # a stream slot's id, and when it lapses in the shared store (epoch seconds)

log = logging.getLogger("parley.limits")

SPREAD = 64
MAX_SPARE = 256  # stream slots one process keeps unused, however far from the limit (each is a row)
SHELF = 30.0  # seconds after its grant a slot stops being handed out: it still outlives a stream by 30 s
IDLE = 10.0  # seconds without a spare taken, after which a process's spare stream slots go back
TIMEOUT = 5.0  # seconds a request waits for a shared counter; then it is let through (and it is logged)


class _Warn:
    """Log a failing counter store at most once every 10 seconds."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, what: str, exc: BaseException, effect: str = "letting requests through") -> None:
        stamp = time.monotonic()
        if stamp - self._last > 10:
            self._last = stamp
            log.warning(f"limit counters unavailable ({what}): {effect}", exc_info=exc)


warn = _Warn()


def _deadline() -> float:
    """When requests stop waiting for a shared-store call starting now (the loop's clock)."""
    return asyncio.get_running_loop().time() + TIMEOUT


async def _wait(task: asyncio.Future[T], deadline: float) -> T:
    """The outcome of a shared-store call, waited for until ``deadline``: TimeoutError then,
    and the call goes on (it is never cancelled; see the module's docstring)."""
    async with asyncio.timeout_at(deadline):
        return await asyncio.shield(task)


@dataclass
class _Lease:
    local: int = 0  # units granted to this process and not spent yet
    window_end: float = 0.0
    full: bool = False  # the shared counter is at its limit until window_end
    headroom: float = 0.0  # the limit minus the shared count, as of the last grant
    waiting: int = 0
    last_grant: int = 0  # units the last grant gave
    owed: int = 0  # requests let through while the grant under way was late: its units pay for them
    fetching: asyncio.Task[None] | None = None
    deadline: float = 0.0  # until when requests wait for ``fetching``


def _seen(task: asyncio.Task[Any]) -> None:
    """A grant nobody waits for: its failure is logged here (the next request asks again)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        warn("grant", exc)


class Leases:
    def __init__(self, counters: Counters, window: Callable[[float], Window]) -> None:
        self._counters = counters
        self._window = window
        self._leases: dict[str, _Lease] = {}

    async def take(self, key: str, limit: int) -> float | None:
        """One unit: None when granted, else the seconds until the window ends."""
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = _Lease()
        while True:
            stamp = time.time()
            if lease.window_end <= stamp:
                lease.local, lease.full, lease.headroom = 0, False, 0.0  # units of a past window are void
            if lease.local > 0:
                self._spend(key, lease, limit)
                return None
            if lease.full:
                return lease.window_end - stamp
            task = lease.fetching if lease.fetching is not None else self._start(key, lease, limit)
            lease.waiting += 1
            try:
                await _wait(task, lease.deadline)
            except Exception as exc:  # noqa: BLE001 - the store failing or late lets requests through
                if task.done() and not task.cancelled() and task.exception() is None:
                    continue  # it landed as the wait ran out: its units are here
                if not task.done():
                    lease.owed += 1
                warn("grant", exc)
                return None
            finally:
                lease.waiting -= 1

    def holds(self, key: str, stamp: float) -> bool:
        """Whether a unit is at hand here for the current window (``spend`` then takes it at once)."""
        lease = self._leases.get(key)
        return lease is not None and lease.local > 0 and lease.window_end > stamp

    def spend(self, key: str, limit: int) -> float:
        """One unit of a lease that ``holds`` one; returns the window's end."""
        lease = self._leases[key]
        self._spend(key, lease, limit)
        return lease.window_end

    def _spend(self, key: str, lease: _Lease, limit: int) -> None:
        lease.local -= 1
        if lease.local * 4 < lease.last_grant and lease.fetching is None and lease.headroom > SPREAD:
            # Far from the limit: the next lease is fetched before this one runs out,
            # so no request waits for the shared counter. (Near it there is no spare
            # and each request waits for its own unit: the count stays exact.)
            self._start(key, lease, limit).add_done_callback(_seen)

    def give_back(self, key: str, window_end: float) -> None:
        """A unit taken for a request that turned out bad: the next request here may use it."""
        lease = self._leases.get(key)
        if lease is not None and lease.window_end == window_end and window_end > time.time():
            lease.local += 1

    def prune(self) -> None:
        """Forget leases whose window ended a while ago (one per caller: many end users add up)."""
        stale = time.time() - 60
        for key in [k for k, lease in self._leases.items() if lease.window_end < stale and lease.fetching is None]:
            del self._leases[key]

    def window_end(self, key: str) -> float:
        lease = self._leases.get(key)
        return lease.window_end if lease is not None else 0.0

    def _start(self, key: str, lease: _Lease, limit: int) -> asyncio.Task[None]:
        lease.deadline = _deadline()
        task = lease.fetching = asyncio.ensure_future(self._fetch(key, lease, limit))
        return task

    async def _fetch(self, key: str, lease: _Lease, limit: int) -> None:
        try:
            await asyncio.sleep(0)  # let the requests that arrived together join this grant
            want = max(lease.waiting, 1)
            spare = int(lease.headroom - want) // SPREAD if lease.headroom > want else 0
            grant = await self._counters.grant(key, want + spare, limit, self._window(time.time()))
            if grant.window_end != lease.window_end:
                lease.local = 0
            lease.window_end = grant.window_end
            # Requests let through while this grant was late already ran: they take their units first.
            lease.local = max(lease.local + grant.granted - lease.owed, 0)
            lease.last_grant = grant.granted
            lease.headroom = max(limit - grant.used, 0.0)
            lease.full = grant.granted < want + spare
        finally:
            lease.fetching = None
            lease.owed = 0  # (when the grant failed, they were let through uncounted, as the rest)


@dataclass
class _Meter:
    window: Callable[[float], Window]
    shared: float = 0.0  # the shared total when last seen
    window_end: float = 0.0
    pending: float = 0.0  # added here, not flushed yet
    flushing: float = 0.0  # on its way to the shared counter
    read_at: float = 0.0  # monotonic; 0: never read
    used_at: float = 0.0  # monotonic: last admission that looked at it
    loading: asyncio.Task[None] | None = field(default=None, repr=False)
    deadline: float = 0.0  # until when requests wait for ``loading``

    def total(self, now: float) -> float:
        shared = self.shared if self.window_end > now else 0.0
        return shared + self.flushing + self.pending


class Meters:
    IDLE = 300.0  # seconds: meters nobody looked at for this long are no longer re-read

    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        self._meters: dict[str, _Meter] = {}

    def reading(self, key: str, stamp: float, mono: float) -> float | None:
        """``used``, without waiting: None for a meter never read yet (``load`` it first)."""
        meter = self._meters.get(key)
        if meter is None or meter.read_at == 0.0:
            return None
        meter.used_at = mono
        return meter.total(stamp)

    async def load(self, key: str, window: Callable[[float], Window]) -> None:
        """Read the shared total the first time a meter is looked at (a failed read lets requests through)."""
        meter = self._meters.get(key)
        if meter is None:
            meter = self._meters[key] = _Meter(window)
        meter.used_at = time.monotonic()  # (so the next sync does not forget it meanwhile)
        if meter.read_at == 0.0:
            if meter.loading is None:
                meter.deadline = _deadline()
                meter.loading = asyncio.ensure_future(self._load(key, meter))
            try:
                await _wait(meter.loading, meter.deadline)
            except Exception as exc:  # noqa: BLE001 - the store failing or late lets requests through
                warn("read", exc)

    def used(self, key: str, stamp: float, mono: float) -> float:
        """What a loaded meter says was used in the current window (``stamp``: time.time())."""
        meter = self._meters[key]
        meter.used_at = mono
        return meter.total(stamp)

    def ends(self, key: str, stamp: float) -> float:
        """When a loaded meter's current window ends."""
        meter = self._meters[key]
        return meter.window_end if meter.window_end > stamp else meter.window(stamp).end

    def add(self, key: str, amount: float, window: Callable[[float], Window]) -> None:
        if amount <= 0:
            return
        meter = self._meters.get(key)
        if meter is None:
            meter = self._meters[key] = _Meter(window)
        meter.pending += amount

    async def _load(self, key: str, meter: _Meter) -> None:
        try:
            reading = (await self._counters.read([(key, meter.window(time.time()))]))[key]
            meter.shared, meter.window_end = reading.used, reading.window_end
        finally:
            meter.read_at = time.monotonic()  # a failed read is retried by the next sync
            meter.loading = None

    async def sync(self) -> None:
        """Flush what was added here; re-read the totals that nothing flushed (other processes' use)."""
        stamp = time.monotonic()
        fresh: set[str] = set()
        for key, meter in list(self._meters.items()):
            if meter.pending <= 0:
                continue
            amount, meter.pending = meter.pending, 0.0
            meter.flushing += amount
            try:
                reading = await self._counters.add(key, amount, meter.window(time.time()))
                meter.shared, meter.window_end, meter.read_at = reading.used, reading.window_end, stamp
                fresh.add(key)
            except Exception as exc:  # noqa: BLE001 - kept, and tried again at the next sync
                meter.pending += amount
                warn("add", exc)
            finally:
                meter.flushing -= amount
        stale = [
            (key, m.window(time.time()))
            for key, m in self._meters.items()
            if key not in fresh and stamp - m.used_at < self.IDLE and m.loading is None
        ]
        for key in [k for k, m in self._meters.items() if stamp - m.used_at >= self.IDLE and m.pending <= 0]:
            del self._meters[key]  # forgotten; read again if it is ever needed
        if not stale:
            return
        try:
            readings = await self._counters.read(stale)
        except Exception as exc:  # noqa: BLE001
            warn("read", exc)
            return
        for key, reading in readings.items():
            found = self._meters.get(key)
            if found is not None:
                found.shared, found.window_end, found.read_at = reading.used, reading.window_end, stamp


@dataclass
class _Pool:
    spare: list[Slot] = field(default_factory=list)  # held here, no stream on them
    out: int = 0  # slots of this pool on streams now: they come back as spares when those end
    keep: int = 0  # spares worth keeping: what the last grant fetched up to (see _fetch)
    headroom: int = 0  # the limit minus the slots held everywhere, at the last grant
    limit: int = 0  # the limit at the last grant
    ttl: float = 0.0  # the slots' time to live at the last grant
    waiting: int = 0
    taken_at: float = 0.0  # monotonic: when a spare was last taken
    fetching: asyncio.Task[bool] | None = None  # True: the grant gave fewer than asked (the limit)
    deadline: float = 0.0  # until when streams wait for ``fetching``


class Slots:
    def __init__(self, counters: Counters, idle: float | None = None) -> None:
        self._counters = counters
        self._idle = IDLE if idle is None else idle  # (read when made: bench/accounting.py stretches it)
        self._pools: dict[str, _Pool] = {}
        self._returning: dict[str, list[str]] = {}  # slot ids on their way back, by key
        self._releasing: dict[str, asyncio.Task[None]] = {}  # the one task giving back a key's slots
        self._closed = False

    def holds(self, key: str, limit: int, ttl: float) -> bool:
        """Whether a slot is at hand here that outlives a stream of ``ttl`` seconds (``spend`` takes it)."""
        pool = self._pools.get(key)
        return pool is not None and self._fresh(key, pool, limit, ttl)

    def spend(self, key: str) -> Slot:
        """The slot ``holds`` found."""
        pool = self._pools[key]
        slot = pool.spare.pop()
        pool.taken_at = time.monotonic()
        pool.out += 1
        if (
            len(pool.spare) * 4 < pool.keep
            and len(pool.spare) + pool.out < pool.keep
            and pool.fetching is None
            and pool.headroom > SPREAD
        ):
            # Far from the limit: more spares are fetched before these run out (unless the
            # streams on slots now will bring back as many as are kept when they end).
            self._start(key, pool, pool.limit, pool.ttl).add_done_callback(_seen)
        return slot

    async def take(self, key: str, limit: int, ttl: float) -> Slot | None:
        """A slot for one stream: None when ``limit`` streams are open everywhere. Raises when
        the shared store fails, TimeoutError when it is late (the caller decides what that means)."""
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool()
        while True:
            if self._fresh(key, pool, limit, ttl):
                return self.spend(key)
            task = pool.fetching if pool.fetching is not None else self._start(key, pool, limit, ttl)
            pool.waiting += 1
            try:
                short = await _wait(task, pool.deadline)
            finally:
                pool.waiting -= 1
            if short and not self._fresh(key, pool, limit, ttl):
                return None  # the store was at the limit when it was asked
            # Otherwise the requests counted into that grant took its slots: ask again.

    def give_back(self, key: str, slot: Slot) -> None:
        """A stream ended: its slot waits here for the next one, or goes back to the shared store."""
        pool = self._pools.get(key)
        if pool is not None:
            pool.out = max(pool.out - 1, 0)  # (a pool forgotten and made again meanwhile counts none)
            if len(pool.spare) < pool.keep and slot[1] >= time.time() + pool.ttl - SHELF and not self._closed:
                pool.spare.append(slot)
                return
        self._release(key, [slot])

    def sweep(self) -> None:
        """At every sync: the spares of a pool nobody took one from for ``idle`` seconds go back,
        and so do spares past their shelf life; pools with nothing left are forgotten."""
        stamp, mono = time.time(), time.monotonic()
        for key, pool in list(self._pools.items()):
            if pool.fetching is not None or pool.waiting:
                continue
            if mono - pool.taken_at < self._idle:
                lasts = stamp + pool.ttl - SHELF
                stale = [slot for slot in pool.spare if slot[1] < lasts]
                pool.spare = [slot for slot in pool.spare if slot[1] >= lasts]
            else:
                stale, pool.spare = pool.spare, []
                del self._pools[key]
            if stale:
                self._release(key, stale)

    async def close(self) -> None:
        """Every spare back to the shared store, and every release under way finished (at shutdown)."""
        self._closed = True
        for key, pool in list(self._pools.items()):
            if pool.spare:
                self._release(key, pool.spare)
                pool.spare = []
        await asyncio.gather(*self._releasing.values(), return_exceptions=True)

    def _fresh(self, key: str, pool: _Pool, limit: int, ttl: float) -> bool:
        """Whether the newest spare outlives a stream of ``ttl`` seconds (older ones go back, and
        all of them when the limit changed since they were granted)."""
        spare = pool.spare
        if limit != pool.limit and spare:
            self._release(key, spare)
            pool.spare = spare = []
        lasts = time.time() + ttl - SHELF
        while spare and spare[-1][1] < lasts:
            self._release(key, [spare.pop()])  # (``_release`` gathers a key's slots into one call)
        return bool(spare)

    def _start(self, key: str, pool: _Pool, limit: int, ttl: float) -> asyncio.Task[bool]:
        pool.deadline = _deadline()
        task = pool.fetching = asyncio.ensure_future(self._fetch(key, pool, limit, ttl))
        return task

    async def _fetch(self, key: str, pool: _Pool, limit: int, ttl: float) -> bool:
        try:
            await asyncio.sleep(0)  # let the streams that arrived together join this grant
            want = pool.waiting  # none when fetched ahead, before the spares run out
            # Spares up to 1/SPREAD of the headroom (at most MAX_SPARE), counting those here
            # and those on streams now (they come back as spares; were they not counted, the
            # spares would be full when they do, and each would go back to the store alone).
            target = min(max(pool.headroom - want, 0) // SPREAD, MAX_SPARE)
            ask = max(want + target - len(pool.spare) - pool.out, want, 1)
            grant = await self._counters.acquire_slots(key, ask, limit, ttl)
            pool.spare.extend((slot, grant.expires_at) for slot in grant.slots)
            pool.headroom = max(limit - grant.held, 0)
            # What was just fetched is kept (ended streams' slots fill the spares back up to it,
            # not past it: each one past it would be a round trip to give back).
            pool.keep = max(target, min(pool.headroom // SPREAD, MAX_SPARE))
            pool.limit, pool.ttl = limit, ttl
            return len(grant.slots) < ask
        finally:
            pool.fetching = None

    def _release(self, key: str, slots: list[Slot]) -> None:
        """Off the request path: the slots go back in one task per key, which gives back in one
        call every slot released while it was waiting for the store."""
        self._returning.setdefault(key, []).extend(slot for slot, _ in slots)
        if key not in self._releasing:
            task = self._releasing[key] = asyncio.ensure_future(self._give(key))
            task.add_done_callback(functools.partial(self._gone, key))

    def _gone(self, key: str, task: asyncio.Task[None]) -> None:
        if self._releasing.get(key) is task:  # (a task cancelled before it ran cleared nothing)
            del self._releasing[key]

    async def _give(self, key: str) -> None:
        try:
            while ids := self._returning.pop(key, None):
                try:
                    await self._counters.release_slots(key, ids)
                except Exception as exc:  # noqa: BLE001 - the slots then lapse on their own
                    warn("release", exc)
        finally:
            # At once, not in a done callback: a slot released from here on needs a new task.
            self._releasing.pop(key, None)
