"""A SQLite write cancelled while it waits for the database's write lock (a limit counter's
time limit, a request given up) neither keeps that lock nor leaves its change: the next writer
gets in as soon as the statement has run, without waiting for the garbage collector."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest

from parley.limits.counters import DatabaseCounters, minute
from parley.storage.db import create_engine, sessionmaker
from parley.storage.models import Base, QuotaCounter
from tests.conftest import write_lock


async def test_a_cancelled_write_leaves_no_lock_and_no_change(tmp_path):
    path = tmp_path / "cancel.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: Base.metadata.create_all(sync, tables=[QuotaCounter.__table__]))
    counters = DatabaseCounters(sessionmaker(engine))
    await counters.grant("k", 1, 10, minute(time.time()))
    gc.disable()  # the garbage collector would free a leaked lock at a time of its choosing
    try:
        holder = write_lock(path)
        # The holder lets go a little after the grant is cancelled: the cancelled UPDATE then
        # gets the lock and runs in aiosqlite's thread (the cancelled task waits for that).
        release = threading.Timer(1.0, lambda: (holder.rollback(), holder.close()))
        release.start()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):  # waits for the lock the holder has
                await counters.grant("k", 1, 10, minute(time.time()))
        release.join()
        probe = await asyncio.to_thread(write_lock, path)  # fails with "database is locked" if kept
        try:
            used = probe.execute("SELECT used FROM quota_counters WHERE key = 'k'").fetchone()[0]
            assert used == 1.0  # the cancelled grant was rolled back
        finally:
            probe.rollback()
            probe.close()
        grant = await counters.grant("k", 1, 10, minute(time.time()))
        assert grant.granted == 1 and grant.used == 2.0
    finally:
        gc.enable()
        await engine.dispose()
