"""Limits hold across worker processes and hosts: `parley serve --workers 2` and a second
`parley serve` on the same PostgreSQL database (and then the same Redis), a key with rpm 50,
100 concurrent requests spread over both: exactly 50 succeed, whichever process served them.
A budget spent on one host is refused on the other. /metrics adds up both workers."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.accounting_helpers import (
    PRICE,
    new_rid,
    parley_serve,
    redis_server,
    sample,
    scrape,
    usage_rows,
    wait_for,
    wait_rows,
)
from tests.conftest import SECRET_KEY, cli_json, fresh_database


@pytest.fixture(params=["database", "redis"])
def shared(request: pytest.FixtureRequest, pg_server: str) -> Iterator[dict[str, Any]]:
    """Where the shared counters live: the database itself, or a Redis of the test's own."""
    database_url = fresh_database(pg_server)
    if request.param == "redis":
        with redis_server() as url:
            yield {"database_url": database_url, "redis_url": url}
    else:
        yield {"database_url": database_url}


def _config(shared: dict[str, Any], upstream_url: str) -> dict[str, Any]:
    return {
        **shared,
        "log_level": "warning",
        "secret_key": SECRET_KEY,
        "usage_flush_interval": 0.2,
        "providers": [{"name": "up", "type": "openai", "base_url": upstream_url + "/v1", "api_key": "sk-up"}],
        "models": [
            {"name": "echo", "provider": "up"},
            {"name": "priced", "provider": "up", "upstream_model": "cached-usage", "price": PRICE.model_dump()},
        ],
    }


async def _burst(urls: list[str], key: str, marker: str, n: int) -> list[tuple[str, str, httpx.Response]]:
    """``n`` requests at once, spread evenly over ``urls``: (url, request id, response)."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=60, limits=limits) as http:

        async def one(i: int) -> tuple[str, str, httpx.Response]:
            url, rid = urls[i % len(urls)], new_rid()
            r = await http.post(
                url + "/v1/chat/completions",
                headers={"x-request-id": rid},
                json={"model": "echo", "messages": [{"role": "user", "content": f"{marker} {i}"}]},
            )
            return url, rid, r

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def test_rpm_is_exact_across_workers_and_hosts(shared, upstream):
    database_url = shared["database_url"]
    config = _config(shared, upstream.url)
    key = cli_json(database_url, "keys", "create", "--name", "shared", "--rpm", "50", "--json")
    with parley_serve(config, workers=2) as a, parley_serve(config, workers=1) as b:
        marker = "burst-" + uuid.uuid4().hex[:10]
        results = asyncio.run(_burst([a, b], key["key"], marker, 100))

        statuses = Counter(r.status_code for _, _, r in results)
        assert statuses == {200: 50, 429: 50}, statuses
        for _, _, r in results:
            if r.status_code == 429:
                assert 1 <= int(r.headers["retry-after"]) <= 60
                assert r.json()["error"]["code"] == "rate_limit_exceeded"
        seen = [body for body in list(upstream.rec.requests) if marker in str(body.get("messages"))]
        assert len(seen) == 50  # the refused ones never reached the upstream

        ok = [rid for _, rid, r in results if r.status_code == 200]
        refused = [rid for _, rid, r in results if r.status_code == 429]
        wait_rows(database_url, ok)
        assert usage_rows(database_url, refused) == []

        # Each server's /metrics adds up all of its workers (each adds its counts every sync).
        for url in (a, b):
            mine = Counter(r.status_code for u, _, r in results if u == url)

            def counted(url: str = url, mine: Counter[int] = mine) -> bool:
                got = scrape(url)
                return (
                    sample(got, "parley_requests_total", dialect="openai", model="echo", status="200") == mine[200]
                    and sample(got, "parley_requests_total", dialect="openai", model="echo", status="429") == mine[429]
                    and sample(got, "parley_rate_limited_total", scope="key", limit="rpm") == mine[429]
                    and sample(got, "parley_active_streams") == 0
                )

            wait_for(counted, f"the metrics of {url} to count its requests")


def test_a_budget_spent_on_one_host_is_refused_on_the_other(shared, upstream):
    database_url = shared["database_url"]
    config = _config(shared, upstream.url)
    key = cli_json(database_url, "keys", "create", "--name", "spender", "--budget-usd", "0.00001", "--json")
    with parley_serve(config, workers=2) as a, parley_serve(config, workers=1) as b:
        headers = {"authorization": f"Bearer {key['key']}"}
        body = {"model": "priced", "messages": [{"role": "user", "content": "spend"}]}
        first = httpx.post(a + "/v1/chat/completions", headers=headers, json=body, timeout=30)
        assert first.status_code == 200

        def refused_on_b() -> httpx.Response | None:
            r = httpx.post(b + "/v1/chat/completions", headers=headers, json=body, timeout=30)
            return r if r.status_code == 429 else None

        r = wait_for(refused_on_b, "the other host to learn the budget is spent", 60)
        assert r.json()["error"]["code"] == "insufficient_quota"
        assert 1 <= int(r.headers["retry-after"]) <= 86400

        def refused_everywhere() -> bool:
            return all(
                httpx.post(url + "/v1/chat/completions", headers=headers, json=body, timeout=30).status_code == 429
                for url in (a, a, b)
            )

        wait_for(refused_everywhere, "every worker to refuse", 60)


def test_concurrent_streams_are_counted_across_hosts(shared, upstream):
    database_url = shared["database_url"]
    config = _config(shared, upstream.url)
    config["models"].append({"name": "endless", "provider": "up"})
    key = cli_json(database_url, "keys", "create", "--name", "streamer", "--max-streams", "1", "--json")
    body = {"model": "endless", "messages": [{"role": "user", "content": "go"}], "stream": True}
    headers = {"authorization": f"Bearer {key['key']}"}
    with parley_serve(config, workers=2) as a, parley_serve(config, workers=1) as b:
        with (
            httpx.Client(headers=headers, timeout=30) as http,
            http.stream("POST", a + "/v1/chat/completions", json=body) as first,
        ):
            assert first.status_code == 200
            lines = first.iter_lines()  # kept: a dropped iterator closes the response
            next(lines)
            for url in (a, b):
                r = httpx.post(url + "/v1/chat/completions", headers=headers, json=body, timeout=30)
                assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"

        def accepted_on_b() -> bool:
            with (
                httpx.Client(headers=headers, timeout=30) as http,
                http.stream("POST", b + "/v1/chat/completions", json=body) as again,
            ):
                return again.status_code == 200

        wait_for(accepted_on_b, "the slot to be free on the other host", 60)
