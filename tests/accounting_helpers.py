"""Helpers for the usage, limits and metrics tests: reading the usage table, polling, metrics,
and Parley's own servers started as `parley serve` processes (several workers, several hosts)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from parley.app import create_app
from parley.config import ModelConfig, Price, Settings
from parley.storage import db
from parley.storage.models import UsageRecord
from tests.conftest import Parley, Upstream, cli_json
from tests.conftest import test_settings as make_settings
from tests.polling import wait_for
from tests.servers import ThreadedServer, free_port

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]


# USD per million tokens: big, so a handful of tokens costs a visible amount.
PRICE = Price(input_per_mtok=1000, output_per_mtok=2000, cached_input_per_mtok=500)
# DETAILED_USAGE: 20 prompt (8 of them cached), 9 completion.
PRICED_COST = (12 * 1000 + 8 * 500 + 9 * 2000) / 1_000_000


def accounting_settings(database_url: str, upstream_url: str, **overrides: Any) -> Settings:
    """The tests' settings plus priced models, and usage written every 0.1 s."""
    settings = make_settings(database_url, upstream_url, usage_flush_interval=0.1, **overrides)
    settings.models.extend(
        [
            ModelConfig(name="priced", provider="up", upstream_model="cached-usage", price=PRICE),
            ModelConfig(name="priced-echo", provider="up", upstream_model="echo", price=PRICE),
            ModelConfig(name="cached-usage", provider="up"),
        ]
    )
    return settings


@contextmanager
def accounting_server(database_url: str, upstream: Upstream) -> Iterator[Parley]:
    with ThreadedServer(create_app(accounting_settings(database_url, upstream.url))) as server:
        key = cli_json(database_url, "keys", "create", "--name", "accounting", "--json")
        yield Parley(server.url, database_url, upstream, key["key"], {"key_id": key["id"]})


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end on its own loop (in a thread: callers may be inside one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def usage_rows(database_url: str, request_ids: list[str]) -> list[dict[str, Any]]:
    """The usage rows of these requests, as stored."""

    async def query() -> list[dict[str, Any]]:
        engine = db.create_engine(database_url)
        try:
            async with db.sessionmaker(engine)() as s:
                rows = (await s.scalars(select(UsageRecord).where(UsageRecord.request_id.in_(request_ids)))).all()
                return [{c.name: getattr(r, c.name) for c in UsageRecord.__table__.columns} for r in rows]
        finally:
            await engine.dispose()

    return run_async(query())


def wait_rows(database_url: str, request_ids: list[str], seconds: float = 30.0) -> list[dict[str, Any]]:
    """Poll until every one of these requests has its usage row (each exactly one)."""

    def landed() -> list[dict[str, Any]] | None:
        rows = usage_rows(database_url, request_ids)
        return rows if len(rows) >= len(request_ids) else None

    rows = wait_for(landed, f"usage rows of {request_ids}", seconds)
    assert sorted(r["request_id"] for r in rows) == sorted(request_ids)
    return sorted(rows, key=lambda r: request_ids.index(r["request_id"]))


def new_rid() -> str:
    return "test-" + uuid.uuid4().hex


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition by (name, labels)."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when there are none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def scrape(url: str, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = httpx.get(url + "/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return metric_samples(r.text)


@contextmanager
def parley_serve(config: dict[str, Any], workers: int = 1, env: dict[str, str] | None = None) -> Iterator[str]:
    """`parley serve` as its own process (``workers`` uvicorn workers) on a free port; yields its URL."""
    work = Path(tempfile.mkdtemp(prefix="parley-serve-"))
    path = work / "parley.yaml"
    path.write_text(json.dumps(config))
    port = free_port()
    run_env = {**os.environ, **(env or {}), "PARLEY_CONFIG": str(path)}
    run_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(work / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", "serve", "--port", str(port), "--workers", str(workers)],
        env=run_env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"parley serve exited: {(work / 'server.log').read_text()[-3000:]}")
            try:
                return httpx.get(url + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, "parley serve to answer", 90)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server of its own on a free port, in a temporary folder; yields its URL."""
    work = Path(tempfile.mkdtemp(prefix="parley-redis-"))
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work), "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        def up() -> bool:
            try:
                return bool(redis.Redis.from_url(url).ping())
            except redis.ConnectionError:
                return False

        wait_for(up, "redis-server to answer", 30)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
