"""The verified-key cache: many requests never wait on the database for one key together.

Over HTTP: a burst of requests with a key nobody has used yet costs one database lookup, not
one per request; a revoked key is refused once the cache's time is up. The refresh-ahead rules
themselves (when a lookup starts, what callers get meanwhile, how long an entry is trusted) are
checked on the cache directly, with a clock the test moves and lookups the test releases.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from parley.app import create_app
from parley.auth import cache as cache_module
from parley.auth.cache import TTLCache
from tests import conftest
from tests.conftest import Parley, cli, cli_json
from tests.polling import wait_for
from tests.servers import ThreadedServer
from tests.v8_helpers import js_token


class KeyLookups:
    """Counts the statements that look a gateway key (and a v8 integration) up, as the server's
    engine runs them."""

    def __init__(self) -> None:
        self.count = 0
        self.integrations = 0

    def __call__(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if "FROM gateway_keys" in statement and "key_hash" in statement:
            self.count += 1
        if statement.lstrip().startswith("SELECT") and "FROM integrations" in statement:
            self.integrations += 1


@pytest.fixture(scope="module")
def cached(database_url: str, upstream: Any) -> Iterator[tuple[Parley, KeyLookups]]:
    app = create_app(conftest.test_settings(database_url, upstream.url, auth_cache_ttl=2))
    with ThreadedServer(app) as server:
        lookups = KeyLookups()
        event.listen(app.state.core.engine.sync_engine, "before_cursor_execute", lookups)
        yield Parley(server.url, database_url, upstream, key=""), lookups


async def test_a_burst_with_a_new_key_costs_one_lookup(cached):
    parley, lookups = cached
    key = cli_json(parley.database_url, "keys", "create", "--name", "burst", "--json")["key"]
    before = lookups.count
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=parley.url, timeout=60, limits=limits) as http:
        answers = await asyncio.gather(
            *(http.get("/v1/models", headers={"authorization": f"Bearer {key}"}) for _ in range(40))
        )
    assert [r.status_code for r in answers] == [200] * 40
    assert lookups.count - before == 1


async def test_a_burst_with_a_new_v8_integration_costs_one_lookup(cached):
    parley, lookups = cached
    app = cli_json(parley.database_url, "integrations", "create", "--name", "burst", "--json")
    before = lookups.integrations
    tokens = [js_token(app["hash_token"], app["app_id"], f"user-{i}", int(time.time()) + 600) for i in range(40)]
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=parley.url, timeout=60, limits=limits) as http:
        answers = await asyncio.gather(
            *(http.get("/v8/models", headers={"authorization": f"Bearer {t}"}) for t in tokens)
        )
    assert [r.status_code for r in answers] == [200] * 40, answers[0].text
    assert lookups.integrations - before == 1


async def test_unknown_keys_are_looked_up_every_time_and_refused(cached):
    parley, lookups = cached
    before = lookups.count
    async with httpx.AsyncClient(base_url=parley.url, timeout=60) as http:
        for _ in range(3):
            r = await http.get("/v1/models", headers={"authorization": "Bearer sk-nobody"})
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "invalid_api_key"
    assert lookups.count - before == 3  # a refusal is never cached: a key made later works at once


def test_a_revoked_key_is_refused_once_the_cache_time_is_up(cached):
    parley, _ = cached
    made = cli_json(parley.database_url, "keys", "create", "--name", "revoked", "--json")
    with parley.client(key=made["key"]) as http:
        assert http.get("/v1/models").status_code == 200
        assert cli(parley.database_url, "keys", "revoke", made["id"]).returncode == 0
        refused = wait_for(lambda: (r := http.get("/v1/models")).status_code != 200 and r, "the revoked key refused")
        assert refused.status_code == 401
        assert http.get("/v1/models").status_code == 401


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lookups:
    """A lookup the test answers when it wants: ``release()`` lets the oldest one return."""

    def __init__(self, value: Any = "identity") -> None:
        self.value = value
        self.started = 0
        self.gates: list[asyncio.Event] = []

    async def __call__(self) -> Any:
        self.started += 1
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return self.value

    def release(self) -> None:
        self.gates.pop(0).set()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(cache_module, "monotonic", fake)  # this module's clock only, not the loop's
    return fake


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_misses_share_one_lookup(clock):
    cache: TTLCache[str] = TTLCache(ttl=2)
    lookup = Lookups()
    callers = [asyncio.ensure_future(cache.get_or_load("k", lookup)) for _ in range(10)]
    await settle()
    assert lookup.started == 1 and not any(c.done() for c in callers)
    lookup.release()
    assert await asyncio.gather(*callers) == ["identity"] * 10


async def test_an_entry_is_refreshed_ahead_and_callers_never_wait(clock):
    cache: TTLCache[str] = TTLCache(ttl=2)
    lookup = Lookups()
    first = asyncio.ensure_future(cache.get_or_load("k", lookup))
    await settle()
    lookup.release()
    assert await first == "identity"

    clock.now += 0.9  # first half of the ttl: the entry as it is, no lookup
    assert await cache.get_or_load("k", lookup) == "identity" and lookup.started == 1

    clock.now += 0.2  # second half: still answered at once, and one lookup starts behind it
    assert await cache.get_or_load("k", lookup) == "identity"
    assert await cache.get_or_load("k", lookup) == "identity"
    await settle()
    assert lookup.started == 2

    lookup.value = "renewed"
    lookup.release()
    await settle()
    clock.now += 0.95  # past the first entry's end, in the first half of the refreshed one's
    assert await cache.get_or_load("k", lookup) == "renewed" and lookup.started == 2


async def test_an_entry_is_trusted_for_ttl_from_when_its_lookup_began(clock):
    cache: TTLCache[str] = TTLCache(ttl=2)
    lookup = Lookups()
    first = asyncio.ensure_future(cache.get_or_load("k", lookup))
    await settle()
    clock.now += 1.5  # a slow database: the lookup takes 1.5 s
    lookup.release()
    assert await first == "identity"
    clock.now += 0.6  # 2.1 s after the lookup began: expired, the caller waits for a new one
    waiting = asyncio.ensure_future(cache.get_or_load("k", lookup))
    await settle()
    assert lookup.started == 2 and not waiting.done()
    lookup.release()
    assert await waiting == "identity"


async def test_a_refresh_that_finds_the_key_revoked_drops_it(clock):
    cache: TTLCache[str] = TTLCache(ttl=2)
    lookup = Lookups()
    first = asyncio.ensure_future(cache.get_or_load("k", lookup))
    await settle()
    lookup.release()
    await first
    clock.now += 1.5
    assert await cache.get_or_load("k", lookup) == "identity"  # starts the refresh
    lookup.value = None
    await settle()
    lookup.release()
    await settle()
    refused = asyncio.ensure_future(cache.get_or_load("k", lookup))
    await settle()
    assert lookup.started == 3  # no entry left: this caller asks the database itself
    lookup.release()
    assert await refused is None


async def test_a_caller_that_leaves_does_not_cancel_the_shared_lookup(clock):
    cache: TTLCache[str] = TTLCache(ttl=2)
    lookup = Lookups()
    leaving = asyncio.ensure_future(cache.get_or_load("k", lookup))
    staying = asyncio.ensure_future(cache.get_or_load("k", lookup))
    await settle()
    leaving.cancel()
    await settle()
    lookup.release()
    assert await staying == "identity" and lookup.started == 1
    assert leaving.cancelled()


async def test_without_a_ttl_every_call_looks_up_alone(clock):
    cache: TTLCache[str] = TTLCache(ttl=0)
    lookup = Lookups()
    callers = [asyncio.ensure_future(cache.get_or_load("k", lookup)) for _ in range(3)]
    await settle()
    assert lookup.started == 3
    for _ in range(3):
        lookup.release()
    assert await asyncio.gather(*callers) == ["identity"] * 3
    assert await asyncio.ensure_future(_released(cache, lookup)) == "identity"
    assert lookup.started == 4


async def _released(cache: TTLCache[str], lookup: Lookups) -> Any:
    call = asyncio.ensure_future(cache.get_or_load("k", lookup))
    await settle()
    lookup.release()
    return await call
