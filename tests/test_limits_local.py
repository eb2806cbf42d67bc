"""The request path of a caller that is not over a limit waits for no shared store: requests per
minute are spent from a local lease refilled before it runs out, and limits already read keep
answering while they are read again in the background. Near a limit the count stays exact."""

from __future__ import annotations

import asyncio
import itertools
import time
import types
from collections.abc import Awaitable, Generator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from parley.caller import Caller
from parley.limits import store
from parley.limits.counters import Grant, Reading, SlotGrant, Window, minute
from parley.limits.gate import Gate, Refused
from parley.limits.quota import Leases
from parley.storage.db import create_engine, sessionmaker
from parley.storage.models import Base
from tests.polling import until, until_equal

T = TypeVar("T")


class SharedCounter:
    """The shared counters' contract, in memory, counting what is asked of it."""

    def __init__(self) -> None:
        self.used: dict[str, float] = {}
        self.grants = 0
        self.slots: dict[str, set[str]] = {}  # stream slots held, by key
        self.slot_calls = 0  # acquisitions and releases
        self.slot_grants = 0
        self._ids = itertools.count()

    async def grant(self, key: str, n: int, limit: int, window: Window) -> Grant:
        self.grants += 1
        used = self.used.get(key, 0.0)
        give = max(0, min(n, int(limit - used)))
        self.used[key] = used + give
        return Grant(give, used + give, window.end)

    async def add(self, key: str, amount: float, window: Window) -> Reading:
        self.used[key] = self.used.get(key, 0.0) + amount
        return Reading(self.used[key], window.end)

    async def read(self, items: list[tuple[str, Window]]) -> dict[str, Reading]:
        return {key: Reading(self.used.get(key, 0.0), window.end) for key, window in items}

    async def acquire_slots(self, key: str, n: int, limit: int, ttl: float) -> SlotGrant:
        self.slot_calls += 1
        self.slot_grants += 1
        held = self.slots.setdefault(key, set())
        given = [f"s{next(self._ids)}" for _ in range(max(0, min(n, limit - len(held))))]
        held.update(given)
        return SlotGrant(given, len(held), time.time() + ttl)

    async def release_slots(self, key: str, slots: list[str]) -> None:
        self.slot_calls += 1
        self.slots[key].difference_update(slots)

    async def aclose(self) -> None:
        pass


async def limits_database(tmp_path: Path) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """A SQLite database (tmp_path/limits.db) with Parley's tables, on an engine made as a
    server makes it, for a Gate's limit book and counters."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'limits.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return engine, sessionmaker(engine)


@types.coroutine
def waits(awaitable: Awaitable[T]) -> Generator[Any, Any, tuple[T, bool]]:
    """Await ``awaitable``, telling whether it had to wait (gave the event loop a turn)."""
    coro = awaitable.__await__()
    waited, sent = False, None
    while True:
        try:
            pending = coro.send(sent)
        except StopIteration as done:
            return done.value, waited
        waited = True
        sent = yield pending


async def test_far_from_the_limit_no_request_waits_for_the_shared_counter():
    counter = SharedCounter()
    leases = Leases(counter, minute)
    waited = 0
    for i in range(100_000):
        refused, waited_now = await waits(leases.take("key:k:rpm", 1_000_000))
        assert refused is None
        waited += waited_now
        if i % 100 == 0:
            await asyncio.sleep(0)  # the event loop turns between requests, as it does serving them
    # Only the first two requests wait (nothing leased yet, then a first lease sized to the
    # headroom); every later lease arrives before the last one runs out.
    assert waited == 2
    assert counter.grants > 3  # the leases were refilled, not granted in one go
    assert counter.used["key:k:rpm"] <= 1_000_000


async def test_two_processes_near_the_limit_admit_exactly_the_limit():
    counter = SharedCounter()
    processes = [Leases(counter, minute), Leases(counter, minute)]
    admitted = 0
    refused = [False, False]
    i = 0
    while not all(refused):
        p = i % 2
        i += 1
        if refused[p]:
            continue
        wait = await processes[p].take("key:k:rpm", 1000)
        if wait is None:
            admitted += 1
        else:
            refused[p] = True
    assert admitted == 1000
    assert counter.used["key:k:rpm"] == 1000


async def test_a_caller_seen_before_is_admitted_without_waiting_until_a_limit_says_no(tmp_path):
    """Once a caller's limits, meters and first rpm lease are read, its requests are admitted by
    one plain call that asks no shared store; going over its tokens per minute is refused there
    too, exactly as the awaited path refuses it."""
    engine, sessions = await limits_database(tmp_path)
    async with sessions() as db:
        await store.set_limits(db, "key", "k1", rpm=1_000_000, tpm=100, budget_usd=5.0)
    counter = SharedCounter()
    gate = Gate(store.LimitBook(sessions, 60), counter)  # type: ignore[arg-type]
    caller = Caller(kind="gateway", request_id="r", dialect="openai", key_id="k1")
    try:
        assert gate.admit_now(caller, streamed=False, stream_ttl=660.0) is None  # nothing read yet: the awaited path
        # The first two wait: limits and meters are read, and the rpm lease is granted twice
        # (one unit, then a lease sized to the headroom the first grant told).
        for _ in range(2):
            admission, waited = await waits(gate.admit(caller, False, 60.0))
            assert waited and admission.taken
            admission.settle(20, 0.0)
        grants = counter.grants
        for _ in range(50):
            admission = gate.admit_now(caller, streamed=False, stream_ttl=660.0)
            assert admission is not None and len(admission.taken) == 1  # an rpm unit, taken here
            admission.settle(1, 0.0)
        await gate.meters.sync()  # the tokens used so far reach the shared counter
        assert counter.used["key:k1:tpm"] == 90
        assert counter.grants == grants  # no request asked for quota
        assert gate.admit_now(caller, streamed=False, stream_ttl=660.0) is not None
        gate.meters.add("key:k1:tpm", 10, minute)  # 100 of 100 used (not flushed yet: counted here)
        with pytest.raises(Refused) as refused:
            gate.admit_now(caller, streamed=False, stream_ttl=660.0)
        assert refused.value.limit == "tpm" and refused.value.status == 429
        with pytest.raises(Refused):
            await gate.admit(caller, False, 60.0)
    finally:
        await gate.drain()
        await engine.dispose()


class Switch:
    """Sessions that can be made to fail, as a database that went away."""

    def __init__(self, sessions: async_sessionmaker[Any]) -> None:
        self.sessions = sessions
        self.down = False
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        if self.down:
            raise ConnectionError("the database is unreachable")
        return self.sessions()


async def test_limits_already_read_answer_at_once_and_are_read_again_in_the_background(tmp_path):
    engine, sessions = await limits_database(tmp_path)
    async with sessions() as db:
        await store.set_limits(db, "key", "k1", rpm=5)
    switch = Switch(sessions)
    gate = Gate(store.LimitBook(switch, 0.05), SharedCounter())  # type: ignore[arg-type]
    caller = Caller(kind="gateway", request_id="r", dialect="openai", key_id="k1")
    try:
        first, waited = await waits(gate.scopes(caller))
        assert waited and [s.limits.rpm for s in first] == [5]  # the first look reads the database

        # The database goes away: past the time to live, the limits read last still answer,
        # at once, while the background read fails.
        switch.down = True
        opened = switch.opened
        await until(lambda: switch.opened > opened, "a background read of the limits", step=lambda: gate.scopes(caller))
        again, waited = await waits(gate.scopes(caller))
        assert not waited and [s.limits.rpm for s in again] == [5]

        # It is back and the limit changed: a later request sees the change, none waited for it.
        async with sessions() as db:
            await store.set_limits(db, "key", "k1", rpm=7)
        switch.down = False

        async def seen() -> list[int | None]:
            scopes, waited = await waits(gate.scopes(caller))
            assert not waited
            return [s.limits.rpm for s in scopes]

        await until_equal(seen, [7])
    finally:
        await gate.drain()
        await engine.dispose()
