"""Taking turns on a row (a session, a conversation): one turn at a time, across processes too.

Within a process an asyncio lock per key does it cheaply; across worker processes a lease on
the row does: an atomic UPDATE that only succeeds while no unexpired lease is held. A lease
outlives any turn (the total timeout caps those), and a crashed holder's lease just expires.

A lease the database was too far away to let go of (it stopped mid-turn) does not hold the row
for the lease's fifteen minutes: it is let go in the background as soon as the database is
back, and meanwhile this process's next turn on the row may take it over (the process lock
proves no turn of this process still uses it).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.errors import NotFound
from parley.storage.models import now
from parley.storage.outage import is_database_outage

LEASE = timedelta(minutes=15)
log = logging.getLogger("parley.locks")

_locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = weakref.WeakValueDictionary()
_unreleased: dict[Hashable, str] = {}  # key -> our lease token the database was away to release
_releasing: set[asyncio.Task[None]] = set()


def lock_for(key: Hashable) -> asyncio.Lock:
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = asyncio.Lock()
    return lock


async def _take_lease(
    sessions: async_sessionmaker[AsyncSession], table: Any, where: tuple[Any, ...], ours: str | None = None
) -> str:
    token = secrets.token_hex(8)
    delay = 0.01
    while True:
        async with sessions() as db:
            stamp = now()
            free = or_(table.lease_until.is_(None), table.lease_until < stamp)
            if ours is not None:
                free = or_(free, table.lease_token == ours)
            claim = update(table).where(*where, free).values(lease_token=token, lease_until=stamp + LEASE)
            result = cast(CursorResult[Any], await db.execute(claim))
            await db.commit()
            if result.rowcount == 1:
                return token
            if not await db.scalar(select(func.count()).select_from(table).where(*where)):
                raise NotFound("Not found: it was deleted while waiting for its turn")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


async def _drop_lease(
    sessions: async_sessionmaker[AsyncSession], table: Any, where: tuple[Any, ...], token: str
) -> None:
    async with sessions() as db:
        await db.execute(
            update(table).where(*where, table.lease_token == token).values(lease_token=None, lease_until=None)
        )
        await db.commit()


async def _drop_when_back(
    sessions: async_sessionmaker[AsyncSession], table: Any, where: tuple[Any, ...], token: str, key: Hashable
) -> None:
    """Let go of a lease once the database answers again (until the lease would expire anyway)."""
    deadline = asyncio.get_running_loop().time() + LEASE.total_seconds()
    delay = 0.25
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(delay)
        try:
            await _drop_lease(sessions, table, where, token)
        except Exception as exc:  # noqa: BLE001 - still away: try again a little later
            if not is_database_outage(exc):
                log.warning("could not release a lease", extra={"fields": {"error": str(exc)[:300]}})
                return
            delay = min(delay * 2, 5.0)
            continue
        if _unreleased.get(key) == token:
            del _unreleased[key]
        return


@asynccontextmanager
async def holding(
    sessions: async_sessionmaker[AsyncSession], table: Any, where: tuple[Any, ...], key: Hashable
) -> AsyncIterator[None]:
    """Hold the row of ``table`` matching ``where`` (it must exist) for one turn."""
    async with lock_for(key):
        ours = _unreleased.get(key)
        token = await _take_lease(sessions, table, where, ours)
        if ours is not None and _unreleased.get(key) == ours:
            del _unreleased[key]  # taken over: the background release now matches nothing
        try:
            yield
        finally:
            try:
                await _drop_lease(sessions, table, where, token)
            except Exception as exc:
                if not is_database_outage(exc):
                    raise
                # The turn's outcome stands (its reply may be stored already); only the lease
                # waits for the database.
                _unreleased[key] = token
                task = asyncio.create_task(_drop_when_back(sessions, table, where, token, key))
                _releasing.add(task)
                task.add_done_callback(_releasing.discard)
