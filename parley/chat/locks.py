"""Taking turns on a row (a session, a conversation): one turn at a time, across processes too.

Within a process an asyncio lock per key does it cheaply; across worker processes a lease on
the row does: an atomic UPDATE that only succeeds while no unexpired lease is held. A lease
outlives any turn (the total timeout caps those), and a crashed holder's lease just expires.
"""

from __future__ import annotations

import asyncio
import secrets
import weakref
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.errors import NotFound
from parley.storage.models import now

LEASE = timedelta(minutes=15)

_locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = weakref.WeakValueDictionary()


def lock_for(key: Hashable) -> asyncio.Lock:
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = asyncio.Lock()
    return lock


async def _take_lease(sessions: async_sessionmaker[AsyncSession], table: Any, where: tuple[Any, ...]) -> str:
    token = secrets.token_hex(8)
    delay = 0.01
    while True:
        async with sessions() as db:
            stamp = now()
            free = or_(table.lease_until.is_(None), table.lease_until < stamp)
            result = await db.execute(
                update(table).where(*where, free).values(lease_token=token, lease_until=stamp + LEASE)
            )
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


@asynccontextmanager
async def holding(
    sessions: async_sessionmaker[AsyncSession], table: Any, where: tuple[Any, ...], key: Hashable
) -> AsyncIterator[None]:
    """Hold the row of ``table`` matching ``where`` (it must exist) for one turn."""
    async with lock_for(key):
        token = await _take_lease(sessions, table, where)
        try:
            yield
        finally:
            await _drop_lease(sessions, table, where, token)
