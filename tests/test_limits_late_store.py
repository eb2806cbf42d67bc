"""A request never waits long for the shared limit counters: when the database is slow to grant
(here SQLite's write lock, held by another connection), requests are let through after the
counters' time limit, and the grant, which is left to run rather than cancelled, is applied when
it lands, paying first for the requests let through meanwhile."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text

from parley.caller import Caller
from parley.limits import quota, store
from parley.limits.counters import DatabaseCounters, Grant, Reading, Window, minute
from parley.limits.gate import Gate
from tests.conftest import write_lock
from tests.polling import until
from tests.test_limits_local import limits_database

HANG = 10.0  # seconds: a request still waiting by then waited out SQLite's busy timeout (30 s)


async def test_requests_are_let_through_while_the_counters_are_locked_and_the_late_grant_pays_for_them(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(quota, "TIMEOUT", 0.3)
    engine, sessions = await limits_database(tmp_path)
    async with sessions() as db:
        await store.set_limits(db, "key", "k1", rpm=50, max_streams=10)
    gate = Gate(store.LimitBook(sessions, 60), DatabaseCounters(sessions))
    caller = Caller(kind="gateway", request_id="r", dialect="openai", key_id="k1")

    async def counted() -> tuple[float, int]:
        async with sessions() as db:
            used = await db.scalar(text("SELECT used FROM quota_counters WHERE key = 'key:k1:rpm'"))
            slots = await db.scalar(text("SELECT count(*) FROM stream_slots WHERE key = 'key:k1:streams'"))
        return used, slots

    try:
        first = await gate.admit(caller, streamed=False, stream_ttl=60.0)
        first.settle(0, 0.0)
        holder = write_lock(tmp_path / "limits.db")  # every grant now waits for it
        try:
            async with asyncio.timeout(HANG):
                admitted = await asyncio.gather(*(gate.admit(caller, True, 60.0) for _ in range(3)))
            # Let through, none holding a stream slot; the grants are still waiting for the lock.
            assert [a.slots for a in admitted] == [[], [], []]
            lease = gate.leases._leases["key:k1:rpm"]
            pool = gate.slots._pools["key:k1:streams"]
            assert lease.fetching is not None and pool.fetching is not None
            assert lease.owed == 3
        finally:
            holder.rollback()
            holder.close()
        await until(lambda: lease.fetching is None and pool.fetching is None, "the late grants to land")
        # The rpm grant counted the three requests it was asked for, and its units went to them,
        # not to later requests; the slots it was asked for are held here as spares.
        assert await counted() == (4.0, 3)
        assert lease.local == 0 and lease.owed == 0 and len(pool.spare) == 3

        later = await gate.admit(caller, True, 60.0)
        assert len(later.slots) == 1  # a spare, taken without a round trip
        assert await counted() == (5.0, 3)  # its rpm unit was granted, not left over from the late grant
        later.settle(0, 0.0)
        for a in admitted:
            a.settle(0, 0.0)
    finally:
        await gate.drain()
        await engine.dispose()


@pytest.mark.parametrize("late", ["read", "grant"])
async def test_a_request_waits_at_most_what_is_left_of_the_time_limit_of_the_call_it_joins(late, monkeypatch):
    """Requests that join a call already under way wait until that call's time limit, not a
    time limit of their own; past it, requests are let through at once until the call lands."""
    monkeypatch.setattr(quota, "TIMEOUT", 0.3)
    release = asyncio.Event()
    calls = 0

    class Late:
        async def grant(self, key: str, n: int, limit: int, window: Window) -> Grant:
            nonlocal calls
            calls += 1
            await release.wait()
            return Grant(n, float(n), window.end)

        async def read(self, items: list[tuple[str, Window]]) -> dict[str, Reading]:
            nonlocal calls
            calls += 1
            await release.wait()
            return {key: Reading(7.0, w.end) for key, w in items}

    leases = quota.Leases(Late(), minute)  # type: ignore[arg-type]
    meters = quota.Meters(Late())  # type: ignore[arg-type]

    def ask() -> asyncio.Future[object]:
        return asyncio.ensure_future(leases.take("k", 100) if late == "grant" else meters.load("k", minute))

    first = ask()
    await asyncio.sleep(0.2)
    joined = ask()  # 0.1 s of the call's time limit is left
    async with asyncio.timeout(HANG):
        await first
    await asyncio.sleep(0.05)  # (a time limit of its own would end 0.2 s after the first's)
    assert joined.done()
    async with asyncio.timeout(HANG):
        await ask()  # past the call's time limit: let through without waiting for it
    assert calls == 1  # one call, never cancelled, never asked again while under way
    release.set()
    await asyncio.sleep(0.05)
    if late == "grant":
        lease = leases._leases["k"]
        assert lease.fetching is None and lease.local == 0  # its one unit went to a request let through
    else:
        assert meters.reading("k", time.time(), time.monotonic()) == 7.0  # the late reading is applied
