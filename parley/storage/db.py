"""Engine and sessions for SQLite or PostgreSQL, and migrations applied at start."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_file(url: str) -> Path | None:
    db = make_url(url).database
    return Path(db) if db and db != ":memory:" else None


@functools.lru_cache(maxsize=256)
def compiled_regex(pattern: str) -> Any:
    """RE2, told never to capture: a match then runs on its DFA alone, which keeps a pattern
    such as ``(.*a){20}`` over long values cheap (capturing groups force the slower engines)."""
    import re2

    options = re2.Options()
    options.never_capture = True
    options.log_errors = False  # an invalid pattern is the caller's 400, not a line on stderr
    return re2.compile(pattern, options=options)


def _regexp(pattern: str, value: Any) -> int:
    """SQLite's REGEXP for attribute filters, in RE2: linear time whatever the pattern."""
    if value is None or not isinstance(value, str):
        return 0
    return 1 if compiled_regex(pattern).search(value) else 0


# Each SQLite connection's statement deadline (time.monotonic(); inf when none is set), read
# by a progress handler that SQLite calls every few thousand steps of a running statement.
_DEADLINES: weakref.WeakKeyDictionary[Any, list[float]] = weakref.WeakKeyDictionary()
_PROGRESS_STEPS = 1000


def _install_deadline(dbapi_conn: Any) -> None:
    deadline = [math.inf]

    def past_deadline() -> int:
        return 1 if time.monotonic() > deadline[0] else 0  # non-zero: SQLite stops, "interrupted"

    dbapi_conn.run_async(lambda conn: conn.set_progress_handler(past_deadline, _PROGRESS_STEPS))
    _DEADLINES[dbapi_conn.driver_connection] = deadline


@contextmanager
def sqlite_deadline(driver_connection: Any, seconds: float) -> Iterator[None]:
    """Statements on this SQLite connection stop with "interrupted" once ``seconds`` pass."""
    deadline = _DEADLINES.get(driver_connection)
    if deadline is None:
        yield
        return
    deadline[0] = time.monotonic() + seconds
    try:
        yield
    finally:
        deadline[0] = math.inf


def json_loads(text: str) -> Any:
    """Stored JSON as Python, always writable again by orjson: orjson reads integers past 64 bits
    as floats (PostgreSQL returns a stored 1e20 as the integer 100000000000000000000, which
    orjson could not write). What orjson will not read at all falls back to the json module."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes a second writer wait
    # instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    dbapi_conn.create_function("regexp", 2, _regexp, deterministic=True)
    _install_deadline(dbapi_conn)


def _on_sqlite_invalidate(dbapi_conn: Any, _record: Any, _exc: BaseException | None) -> None:
    """Close an invalidated connection's SQLite handle on its own thread, right behind the
    statement it may still be running.

    A task cancelled while its statement runs (a timeout, a client gone) has its connection
    invalidated, and aiosqlite's close and stop then overlap: the handle is let go without being
    closed. If the statement was a write, its transaction stays open, holding the database's one
    write lock until the garbage collector happens to find the handle; every other write waits
    out its busy timeout and fails with "database is locked" meanwhile. (``_tx`` is the queue
    SQLAlchemy's own aiosqlite adapter puts calls on to run them on that thread.)"""
    driver = getattr(dbapi_conn, "driver_connection", None)
    handle = getattr(driver, "_connection", None)
    queue = getattr(driver, "_tx", None)
    if handle is not None and queue is not None:
        queue.put_nowait((None, functools.partial(_end, handle)))


def _end(handle: Any) -> None:
    # Rolled back first: a statement object still referenced elsewhere would keep a closed
    # handle (and its transaction) alive until the statement is freed.
    try:
        handle.rollback()
    finally:
        handle.close()


# pgvector's HNSW scan parameters for memory search (memory/search.py), set on every
# PostgreSQL connection in its startup message, so that no search spends a round trip on them:
# a wider candidate list than the default 40, and iterative scans, so that a filtered search
# still finds its ``limit`` nearest allowed chunks.
PG_SEARCH_SETTINGS = {"hnsw.ef_search": "100", "hnsw.iterative_scan": "relaxed_order"}


def _on_pg_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server closed (a restart, a terminated backend) is replaced, not
    used. asyncpg marks a connection closed as soon as its socket ends, so this costs nothing,
    where a ping (pool_pre_ping) would cost three round trips per checkout: BEGIN, the ping,
    ROLLBACK."""
    if dbapi_conn.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


def create_engine(
    url: str,
    *,
    connect_timeout: float | None = None,
    pool_timeout: float = 30.0,
    statement_timeout: float | None = None,
    filter_timeout: float | None = None,
) -> AsyncEngine:
    """An engine whose every wait is bounded: opening a connection (``connect_timeout``), getting
    one from the pool (``pool_timeout``) and, on PostgreSQL, running a statement
    (``statement_timeout``, enforced by the server and, a little later, by the client too, in
    case the server stops answering). ``filter_timeout`` is read by memory filters (filters.py)."""
    options = {"parley_filter_seconds": filter_timeout} if filter_timeout else {}
    if is_sqlite(url):
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            pool_size=8,
            max_overflow=8,
            pool_timeout=pool_timeout,
            execution_options=options,
            json_deserializer=json_loads,
        )
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        event.listen(engine.sync_engine, "invalidate", _on_sqlite_invalidate)
        return engine
    connect_args: dict[str, Any] = {"server_settings": dict(PG_SEARCH_SETTINGS)}
    if connect_timeout:
        connect_args["timeout"] = connect_timeout
    if statement_timeout:
        connect_args["command_timeout"] = statement_timeout + 5
        connect_args["server_settings"]["statement_timeout"] = f"{round(statement_timeout * 1000)}ms"
    engine = create_async_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_timeout=pool_timeout,
        connect_args=connect_args,
        execution_options=options,
        json_deserializer=json_loads,
    )
    event.listen(engine.sync_engine, "checkout", _on_pg_checkout)
    return engine


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    # Imported here: alembic (with mako and pygments) holds about 10 MB, and a worker started
    # by `parley serve` finds the database already migrated and never needs it.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = url
    return cfg


def migrate_sync(url: str) -> None:
    """Bring the schema to the newest revision (runs its own event loop: call off-loop)."""
    if is_sqlite(url) and (path := _sqlite_file(url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    command.upgrade(alembic_config(url), "head")


async def migrate(url: str) -> None:
    await asyncio.to_thread(migrate_sync, url)
