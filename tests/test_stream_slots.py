"""Concurrent-stream slots: far from the limit a stream takes a slot this process already holds
(no shared-store round trip), near it every slot is asked for and given back at once, so the
count across processes stays exact. The shared stores give slots in batches, never past the
limit, on SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from parley.caller import Caller
from parley.limits import store
from parley.limits.counters import Counters, DatabaseCounters
from parley.limits.gate import Gate, Refused
from parley.limits.quota import MAX_SPARE, SHELF, Slot, Slots
from parley.storage.models import Base, QuotaCounter, StreamSlot
from tests.accounting_helpers import redis_server
from tests.conftest import fresh_database
from tests.test_limits_local import SharedCounter, limits_database, waits

TTL = 660.0
KEY = "key:k:streams"


async def settled() -> None:
    """Let the slot releases started in the background reach the shared store."""
    for _ in range(5):
        await asyncio.sleep(0)


async def cycle(slots: Slots, open_streams: list[Slot], width: int, streams: int) -> None:
    """``streams`` more streams far from the limit, ``width`` open at a time, the oldest ending first."""
    for i in range(streams):
        if len(open_streams) == width:
            slots.give_back(KEY, open_streams.pop(0))
        slot = await slots.take(KEY, 1_000_000, TTL)
        assert slot is not None
        open_streams.append(slot)
        if i % 100 == 0:
            await asyncio.sleep(0)  # the event loop turns between streams, as it does serving them


async def test_far_from_the_limit_streams_take_slots_held_here():
    counter = SharedCounter()
    slots = Slots(counter)
    open_streams: list[Slot] = []
    waited = 0
    for i in range(20_000):
        if len(open_streams) == 64:  # 64 streams open at a time, the oldest ending first
            slots.give_back(KEY, open_streams.pop(0))
        slot, waited_now = await waits(slots.take(KEY, 10_000, TTL))
        assert slot is not None
        open_streams.append(slot)
        waited += waited_now
        assert len(counter.slots[KEY]) <= 10_000
        if i % 100 == 0:
            await asyncio.sleep(0)
    # The first streams wait while the slots in use grow to 64 (a grant sized to the headroom
    # each time); after that the slots of ended streams serve the new ones.
    assert waited < 20
    assert counter.slot_calls < 40
    held = counter.slots[KEY]
    assert 64 <= len(held) <= 64 + 10_000 // 64  # in use, and at most 1/64 of the headroom spare
    assert {slot for slot, _ in open_streams} <= held


async def test_ended_streams_refill_the_spares_without_round_trips_and_no_more_are_held_than_kept():
    counter = SharedCounter()
    slots = Slots(counter)
    await cycle(slots, [], 64, 20_000)
    await settled()
    assert counter.slot_calls <= 3  # a slot, then one grant of spares; no slot given back one by one
    assert len(counter.slots[KEY]) <= 2 + MAX_SPARE  # two streams' slots asked for, and the spares


async def test_streams_opened_together_bring_their_slots_back_as_spares_not_to_the_store():
    """64 streams open at once, then one ends as another starts: the spares fetched ahead count
    the slots on streams, so no ended stream finds the spares full and gives its slot back."""
    counter = SharedCounter()
    slots = Slots(counter)
    first = await asyncio.gather(*(slots.take(KEY, 1_000_000, TTL) for _ in range(64)))
    open_streams = [slot for slot in first if slot is not None]
    assert len(open_streams) == 64
    await cycle(slots, open_streams, 64, 20_000)
    await settled()
    released = counter.slot_calls - counter.slot_grants
    assert (counter.slot_grants, released) == (2, 0)  # the 64 together, then the spares once
    assert len(counter.slots[KEY]) == MAX_SPARE  # in use and spare together: what is kept


async def test_slots_going_back_together_go_back_in_one_call():
    counter = SharedCounter()
    slots = Slots(counter)
    streams = await asyncio.gather(*(slots.take(KEY, 100, TTL) for _ in range(40)))
    assert counter.slot_grants == 1 and len(counter.slots[KEY]) == 40
    for slot in streams:  # near the limit (100): each ended stream's slot goes back
        assert slot is not None
        slots.give_back(KEY, slot)
    await settled()
    assert counter.slots[KEY] == set()
    assert counter.slot_calls - counter.slot_grants == 1  # all 40 in one call


async def test_near_the_limit_two_processes_hold_exactly_the_limit():
    counter = SharedCounter()
    a, b = Slots(counter), Slots(counter)
    taken: list[tuple[Slots, Slot]] = []
    for process in (a, b) * 5:
        slot = await process.take(KEY, 5, TTL)
        if slot is not None:
            taken.append((process, slot))
    assert len(taken) == 5 and len(counter.slots[KEY]) == 5
    assert await a.take(KEY, 5, TTL) is None and await b.take(KEY, 5, TTL) is None
    # Near the limit a slot goes back to the shared store as its stream ends, so the other
    # process can have it.
    owner, slot = next((p, s) for p, s in taken if p is a)
    owner.give_back(KEY, slot)
    await settled()
    assert len(counter.slots[KEY]) == 4
    assert await b.take(KEY, 5, TTL) is not None
    assert await a.take(KEY, 5, TTL) is None


async def ended_streams_leave_spares(slots: Slots, counter: SharedCounter) -> int:
    """Ten streams far from the limit, ended: the spares held here for the next ones."""
    streams = [await slots.take(KEY, 10_000, TTL) for _ in range(10)]
    for slot in streams:
        assert slot is not None
        slots.give_back(KEY, slot)
    await settled()
    spare = len(counter.slots[KEY])
    assert spare >= 10  # the ended streams' slots are still held here
    return spare


async def test_spares_are_kept_through_a_pause_between_bursts():
    counter = SharedCounter()
    slots = Slots(counter)  # spares go back after IDLE (10) seconds with none taken
    spare = await ended_streams_leave_spares(slots, counter)
    for _ in range(3):  # syncs during a pause: none taken, yet not idle for long
        slots.sweep()
        await settled()
    assert len(counter.slots[KEY]) == spare
    calls = counter.slot_calls
    assert await slots.take(KEY, 10_000, TTL) is not None  # the next burst needs no round trip
    assert counter.slot_calls == calls


async def test_spares_nobody_takes_for_a_while_go_back():
    counter = SharedCounter()
    slots = Slots(counter, idle=0.05)
    await ended_streams_leave_spares(slots, counter)
    await asyncio.sleep(0.1)
    slots.sweep()  # none taken for longer than ``idle``: all go back
    await settled()
    assert counter.slots[KEY] == set()
    # The next stream asks the store again.
    calls = counter.slot_calls
    assert await slots.take(KEY, 10_000, TTL) is not None
    assert counter.slot_calls == calls + 1


async def test_a_slot_that_would_lapse_during_a_stream_is_not_handed_to_it():
    counter = SharedCounter()
    slots = Slots(counter)
    first = await slots.take(KEY, 10_000, 100.0)
    assert first is not None
    slots.give_back(KEY, first)
    spare = len(counter.slots[KEY])
    assert spare > 0 and slots.holds(KEY, 10_000, 100.0)
    # A stream that may last longer than the spares have left: they go back, a new one is asked for.
    assert not slots.holds(KEY, 10_000, 100.0 + SHELF + 1)
    slot = await slots.take(KEY, 10_000, 100.0 + SHELF + 1)
    await settled()
    assert slot is not None and slot[0] != first[0]
    assert first[0] not in counter.slots[KEY]
    # A slot given back after its shelf life is not kept either.
    slots.give_back(KEY, (slot[0], slot[1] - SHELF - 1))
    await settled()
    assert slot[0] not in counter.slots[KEY]


async def test_spares_go_back_when_the_limit_changes():
    counter = SharedCounter()
    slots = Slots(counter)
    first = await slots.take(KEY, 10_000, TTL)
    assert first is not None
    slots.give_back(KEY, first)
    await settled()  # the spares fetched ahead arrive
    assert len(counter.slots[KEY]) > 1 and slots.holds(KEY, 10_000, TTL)
    assert not slots.holds(KEY, 1, TTL)  # lowered to one stream: the spare is not this process's to use
    await settled()
    assert counter.slots[KEY] == set()
    assert await slots.take(KEY, 1, TTL) is not None
    assert await slots.take(KEY, 1, TTL) is None


async def test_a_caller_with_a_stream_limit_is_admitted_without_waiting(tmp_path):
    engine, sessions = await limits_database(tmp_path)
    async with sessions() as db:
        await store.set_limits(db, "key", "k1", max_streams=1000)
        await store.set_limits(db, "key", "k2", max_streams=1)
    counter = SharedCounter()
    gate = Gate(store.LimitBook(sessions, 60), counter)  # type: ignore[arg-type]
    caller = Caller(kind="gateway", request_id="r", dialect="openai", key_id="k1")
    try:
        admission, waited = await waits(gate.admit(caller, True, TTL))  # the limits are read, a slot asked for
        assert waited and len(admission.slots) == 1
        admission.settle(0, 0.0)  # the slot stays here: far from the limit
        grants = counter.slot_grants
        for _ in range(100):
            admission = gate.admit_now(caller, streamed=True, stream_ttl=TTL)
            assert admission is not None and len(admission.slots) == 1  # taken here, without waiting
            await asyncio.sleep(0)
            admission.settle(0, 0.0)
        assert counter.slot_grants <= grants + 1  # at most one grant of spares, in the background
        await settled()
        assert len(counter.slots["key:k1:streams"]) <= 1000 // 64  # spares: 1/64 of the headroom
        # One stream at most: each slot is asked for, and refused while one is open.
        one = Caller(kind="gateway", request_id="r", dialect="openai", key_id="k2")
        held = await gate.admit(one, True, TTL)
        assert gate.admit_now(one, streamed=True, stream_ttl=TTL) is None
        with pytest.raises(Refused) as refused:
            await gate.admit(one, True, TTL)
        assert refused.value.limit == "streams"
        held.settle(0, 0.0)
        await settled()
        assert counter.slots["key:k2:streams"] == set()
    finally:
        await gate.drain()
        await engine.dispose()
    assert counter.slots["key:k1:streams"] == set()  # the spares went back at shutdown


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
async def shared_store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Counters]:
    if request.param == "redis":
        from parley.limits.redis_counters import RedisCounters

        with redis_server() as url:
            counters = RedisCounters(url)
            yield counters
            await counters.aclose()
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'slots.db'}"
    else:
        url = await asyncio.to_thread(fresh_database, request.getfixturevalue("pg_server"))
    engine = create_async_engine(url)
    tables = [QuotaCounter.__table__, StreamSlot.__table__]
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: Base.metadata.create_all(sync, tables=tables))
    yield DatabaseCounters(async_sessionmaker(engine, expire_on_commit=False))
    await engine.dispose()


async def test_the_shared_store_gives_slots_in_batches_never_past_the_limit(shared_store):
    first = await shared_store.acquire_slots(KEY, 3, 5, TTL)
    assert len(first.slots) == 3 and first.held == 3
    second = await shared_store.acquire_slots(KEY, 5, 5, TTL)
    assert len(second.slots) == 2 and second.held == 5
    assert len(set(first.slots + second.slots)) == 5
    none = await shared_store.acquire_slots(KEY, 1, 5, TTL)
    assert none.slots == [] and none.held == 5
    await shared_store.release_slots(KEY, first.slots[:2])
    again = await shared_store.acquire_slots(KEY, 4, 5, TTL)
    assert len(again.slots) == 2 and again.held == 5
    # Slots whose holder never gave them back lapse.
    other = "key:other:streams"
    await shared_store.acquire_slots(other, 2, 2, -1.0)
    lapsed = await shared_store.acquire_slots(other, 2, 2, TTL)
    assert len(lapsed.slots) == 2 and lapsed.held == 2
