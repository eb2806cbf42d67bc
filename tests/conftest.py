"""Fixtures: an upstream double, PostgreSQL (pgserver) and Parley itself, all over real HTTP.

Every test that takes ``parley`` runs twice: on a SQLite file and on a real PostgreSQL server.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.server_protocol import Protocol
from tests.servers import ThreadedServer
from tests.upstream_double import Recorder, build

if TYPE_CHECKING:
    from tests.vendor_stack import Stack  # it imports this module

SECRET_KEY = "0lS5lG1l3bJ8dM3sWkq6hGbQ7C9mYy2Q4a8c5vNnQ0E="  # the Fernet key tests share with the CLI
DOUBLE_MODELS = [
    "echo",
    "tools",
    "one-tool",
    "reasoning",
    "fail-500",
    "fail-400",
    "hang",
    "silent-stream",
    "slow-stream",
    "endless",
    "drop",
    "double-usage",
    "no-usage",
    "fail-401",
    "fail-429",
    "fail-503",
    "nul-reply",
]
# The models that never answer (a request, a stream): served through a provider whose time
# limits are short, so their tests end soon.
SILENT_MODELS = ("hang", "silent-stream")
SILENCE_TIMEOUTS = {"connect": 2, "first_byte": 1.5, "idle": 1.0, "total": 20}


@dataclass
class Upstream:
    url: str
    rec: Recorder


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    rec = Recorder()
    with ThreadedServer(build(rec)) as server:
        yield Upstream(server.url, rec)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A real PostgreSQL with pgvector: PARLEY_TEST_PG_URL if set, else one pgserver starts."""
    if url := os.environ.get("PARLEY_TEST_PG_URL"):
        yield url
        return
    import pgserver

    data = Path(tempfile.mkdtemp(prefix="parley-pg-"))
    server = pgserver.get_server(data, cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


def write_lock(path: Path) -> sqlite3.Connection:
    """A connection holding a SQLite database's one write lock, once it has it (waiting up to 20 s)."""
    conn = sqlite3.connect(path, timeout=20, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def fresh_database(pg_uri: str) -> str:
    """A new, empty database on the test server; returns its asyncpg URL."""
    import asyncio

    import asyncpg

    name = "parley_" + uuid.uuid4().hex[:10]

    async def create() -> None:
        conn = await asyncpg.connect(pg_uri)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    base, _, query = pg_uri.partition("?")
    base = base.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'parley.db'}"
    return fresh_database(request.getfixturevalue("pg_server"))


def test_settings(database_url: str, upstream_url: str, **overrides: Any) -> Settings:
    # Generous for every model that answers, so a loaded machine never turns a slow answer into
    # a 504; short only on "up-silent", whose models (hang, silent-stream) test the time limits.
    patient = {"connect": 5, "first_byte": 30, "idle": 30, "total": 60, **overrides.pop("upstream_timeouts", {})}
    data: dict[str, Any] = {
        "database_url": database_url,
        "providers": [
            {
                "name": "up",
                "type": "openai",
                "base_url": upstream_url + "/v1",
                "api_key": "sk-upstream-secret",
                "timeouts": patient,
            },
            {"name": "up-silent", "type": "openai", "base_url": upstream_url + "/v1", "timeouts": SILENCE_TIMEOUTS},
            {
                "name": "up-short",
                "type": "openai",
                "base_url": upstream_url + "/v1",
                "timeouts": {**patient, "total": 1.0},
            },
            {"name": "nowhere", "type": "openai", "base_url": "http://127.0.0.1:9/v1", "timeouts": SILENCE_TIMEOUTS},
            {"name": "builtin", "type": "builtin", "chunk_delay": 0},
        ],
        "models": [
            {"name": "gpt-4o-mini", "provider": "up", "upstream_model": "echo"},
            *({"name": m, "provider": "up-silent" if m in SILENT_MODELS else "up"} for m in DOUBLE_MODELS),
            {"name": "endless-short", "provider": "up-short", "upstream_model": "endless"},
            {"name": "stalled-body", "provider": "up-short", "upstream_model": "stalled-body"},
            {"name": "misnamed", "provider": "up", "upstream_model": "fail-404"},  # a wrong upstream_model
            {"name": "unreachable", "provider": "nowhere"},
            {"name": "parley-offline", "provider": "builtin"},
            {
                "name": "text-embedding-3-small",
                "provider": "up",
                "kind": "embedding",
                "similarity": {"midpoint": 0.9, "slope": 10},
            },
            {"name": "slow-embed", "provider": "up", "kind": "embedding"},
            {"name": "fail-embed", "provider": "up", "kind": "embedding"},
            {"name": "misnamed-embed", "provider": "up", "kind": "embedding", "upstream_model": "fail-404"},
        ],
        "default_model": "gpt-4o-mini",
        "sse_ping_interval": 0.25,
        "auth_cache_ttl": 0,
        "max_body_bytes": 256 * 1024,
        "max_upload_bytes": 2 * 1024 * 1024,
        "secret_key": SECRET_KEY,
        "extract_timeout": 5,
        # Filters are bounded by what they may hold; their run time limit is tested on its own
        # (test_filter_limits.py) and must not fail a legitimate filter on a loaded machine.
        "filter_timeout": 20,
        "embedding_lease": 2,
        "embedding_poll": 0.1,
        "embedding_retry_delay": 0.1,
    }
    data.update(overrides)
    return Settings.model_validate(data)


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``parley`` CLI against a database."""
    env = {**os.environ, "PARLEY_DATABASE_URL": database_url, "PARLEY_SECRET_KEY": SECRET_KEY}
    env.pop("PARLEY_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "parley", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def cli_json(database_url: str, *args: str) -> Any:
    done = cli(database_url, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@dataclass
class Parley:
    url: str
    database_url: str
    upstream: Upstream
    key: str
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        auth = {"authorization": f"Bearer {key or self.key}"} if key != "" else {}
        return httpx.Client(base_url=self.url, headers={**auth, **headers}, timeout=30)


@pytest.fixture(scope="session")
def parley(database_url: str, upstream: Upstream) -> Iterator[Parley]:
    settings = test_settings(database_url, upstream.url)
    # Served with the HTTP protocol `parley serve` uses (parley.server_protocol).
    with ThreadedServer(create_app(settings), http=Protocol) as server:
        key = cli_json(database_url, "keys", "create", "--name", "tests", "--json")["key"]
        yield Parley(server.url, database_url, upstream, key)


# The provider tests' stacks (tests/vendor_stack.py): a vendor's double, and a Parley whose
# provider points at it. Each test module that asks for one starts its own.


@pytest.fixture(scope="module")
def claude(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from tests.anthropic_helpers import claude_stack

    with claude_stack(tmp_path_factory) as stack:
        yield stack


@pytest.fixture(scope="module")
def gemini(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from tests.gemini_helpers import gemini_stack

    with gemini_stack(tmp_path_factory) as stack:
        yield stack
