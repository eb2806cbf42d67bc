"""Shared counters for limits, correct across worker processes and hosts: in the database.

Every change is one atomic conditional UPDATE, on PostgreSQL (row locks; READ COMMITTED
re-checks the WHERE against the newest row) and on SQLite (one writer at a time):

- ``grant``: give up to ``n`` units while ``used < limit``, never past the limit;
- ``add``: count tokens or spend that were already used;
- ``acquire_slots``/``release_slots``: concurrent streams, one row per slot, that expire on
  their own if the process holding them dies; a process may take several at once and hand
  them to its streams itself (quota.py's ``Slots``).

A counter's window is either anchored (a minute that starts with the first use after the last
one ended) or a calendar period (a UTC day or month). The statement that finds the window over
resets it. Redis does the same with Lua scripts (redis_counters.py).
"""

from __future__ import annotations

import calendar
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.storage.models import QuotaCounter, StreamSlot

MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Window:
    start: float  # where a reset window starts (epoch seconds)
    expired_before: float  # a stored window that started before this is over
    span: float  # seconds
    calendar: bool = False

    @property
    def end(self) -> float:
        return self.start + self.span


def minute(now: float) -> Window:
    """A minute from the first use after the last minute ended."""
    return Window(now, now - MINUTE, MINUTE)


def period(name: str, now: float) -> Window:
    """The current UTC day or month."""
    moment = datetime.fromtimestamp(now, UTC)
    if name == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        days = calendar.monthrange(start.year, start.month)[1]
        span = days * 86400.0
    else:
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        span = 86400.0
    begin = start.timestamp()
    return Window(begin, begin, span, calendar=True)


@dataclass(frozen=True, slots=True)
class Reading:
    used: float
    window_end: float


@dataclass(frozen=True, slots=True)
class SlotGrant:
    slots: list[str]  # the slot ids given, none when the limit is reached
    held: int  # slots of the key held everywhere, these included
    expires_at: float  # epoch seconds: when these slots lapse unless given back before


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int
    used: float
    window_end: float


class Counters(Protocol):
    async def grant(self, key: str, n: int, limit: int, window: Window) -> Grant: ...

    async def add(self, key: str, amount: float, window: Window) -> Reading: ...

    async def read(self, items: list[tuple[str, Window]]) -> dict[str, Reading]: ...

    async def acquire_slots(self, key: str, n: int, limit: int, ttl: float) -> SlotGrant: ...

    async def release_slots(self, key: str, slots: list[str]) -> None: ...

    async def aclose(self) -> None: ...


# Core statements on the tables, not ORM ones: an ORM UPDATE/DELETE first works out which
# objects of the session it touches (a SELECT or an evaluation), for nothing here.
_quota = cast(Table, QuotaCounter.__table__)
_slots = cast(Table, StreamSlot.__table__)
_q = _quota.c


class DatabaseCounters:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._known: set[str] = set()  # counter rows known to exist (they are never deleted)

    async def _ensure(self, db: AsyncSession, key: str) -> None:
        if key in self._known:
            return
        dialect = db.bind.dialect.name if db.bind is not None else "sqlite"
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await db.execute(
            insert(_quota).values(key=key, window_start=0.0, used=0.0, granted=0.0).on_conflict_do_nothing()
        )
        if len(self._known) >= 100_000:
            self._known.clear()  # bounded: a forgotten key costs one more no-op insert
        self._known.add(key)

    async def grant(self, key: str, n: int, limit: int, window: Window) -> Grant:
        expired = _q.window_start < window.expired_before
        base = case((expired, 0.0), else_=_q.used)
        give = case((base + n <= limit, float(n)), else_=limit - base)
        statement = (
            update(_quota)
            .where(_q.key == key, or_(expired, _q.used < limit))
            .values(used=base + give, granted=give, window_start=case((expired, window.start), else_=_q.window_start))
            .returning(_q.used, _q.granted, _q.window_start)
        )
        async with self._sessions() as db:
            await self._ensure(db, key)
            row = (await db.execute(statement)).first()
            if row is None:  # full: nothing given; when does this window end?
                row = (await db.execute(select(_q.used, _q.granted, _q.window_start).where(_q.key == key))).one()
                await db.commit()
                return Grant(0, row.used, row.window_start + window.span)
            await db.commit()
        return Grant(int(row.granted), row.used, row.window_start + window.span)

    async def add(self, key: str, amount: float, window: Window) -> Reading:
        expired = _q.window_start < window.expired_before
        statement = (
            update(_quota)
            .where(_q.key == key)
            .values(
                used=case((expired, 0.0), else_=_q.used) + amount,
                window_start=case((expired, window.start), else_=_q.window_start),
            )
            .returning(_q.used, _q.window_start)
        )
        async with self._sessions() as db:
            await self._ensure(db, key)
            row = (await db.execute(statement)).one()
            await db.commit()
        return Reading(row.used, row.window_start + window.span)

    async def read(self, items: list[tuple[str, Window]]) -> dict[str, Reading]:
        windows = dict(items)
        async with self._sessions() as db:
            rows = (await db.execute(select(_q.key, _q.used, _q.window_start).where(_q.key.in_(windows)))).all()
        out = {key: Reading(0.0, w.end) for key, w in windows.items()}
        for row in rows:
            w = windows[row.key]
            if row.window_start >= w.expired_before:
                out[row.key] = Reading(row.used, row.window_start + w.span)
        return out

    async def acquire_slots(self, key: str, n: int, limit: int, ttl: float) -> SlotGrant:
        stamp = time.time()
        async with self._sessions() as db:
            await self._ensure(db, key)
            # The counter row is the lock: acquirers of one key queue here (a row lock on
            # PostgreSQL, the one writer on SQLite), so counting and then adding is atomic.
            await db.execute(update(_quota).where(_q.key == key).values(granted=_q.granted))
            await db.execute(delete(_slots).where(_slots.c.key == key, _slots.c.expires_at < stamp))
            held = await db.scalar(select(func.count()).select_from(_slots).where(_slots.c.key == key)) or 0
            ids = [secrets.token_hex(16) for _ in range(max(0, min(n, limit - held)))]
            if ids:
                await db.execute(insert(_slots), [{"id": i, "key": key, "expires_at": stamp + ttl} for i in ids])
            await db.commit()
        return SlotGrant(ids, held + len(ids), stamp + ttl)

    async def release_slots(self, key: str, slots: list[str]) -> None:
        async with self._sessions() as db:
            await db.execute(delete(_slots).where(_slots.c.id.in_(slots)))
            await db.commit()

    async def aclose(self) -> None:
        pass
