"""Usage rows in batches: every row lands exactly as it was made, whatever the batch's size
(a SQLite file gets them through a writer thread of its own in multi-row INSERTs, PostgreSQL
through the pool, a thousand rows per INSERT), and a batch the database refuses is counted as
dropped."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from parley.storage import db
from parley.usage import store
from parley.usage import writer as writer_module
from parley.usage.record import UsageRow
from parley.usage.sqlite_sink import SqliteSink, rows_per_insert, split
from parley.usage.writer import BATCH, UsageWriter
from tests.accounting_helpers import run_async, usage_rows
from tests.conftest import cli_json, write_lock


def _rows(n: int) -> list[UsageRow]:
    start = time.time() - 5
    rid = uuid.uuid4().hex[:8]
    return [
        UsageRow(
            start + i * 0.000_37,
            f"batch-{rid}-{i}",
            "gateway" if i % 2 else "integration",
            f"key-{i % 3}" if i % 2 else None,
            None,
            None if i % 2 else "app-1",
            None if i % 2 else f"user ✓ {i}",
            "openai",
            "priced",
            "up" if i % 5 else None,
            "up/cached-usage" if i % 5 else None,
            "cached-usage" if i % 5 else None,
            i,
            2 * i,
            i // 3,
            i // 7,
            i * 1.5e-6,
            0.25 + i,
            None if i % 4 else i / 8,
            200 if i % 11 else 502,
            None if i % 11 else "upstream_error",
            bool(i % 2),
        )
        for i in range(n)
    ]


def _flush(database_url: str, rows: list[UsageRow]) -> tuple[int, int, bool]:
    """Rows written and dropped, and whether a writer thread of its own wrote them."""

    async def go() -> tuple[int, int, bool]:
        engine = db.create_engine(database_url)
        writer = UsageWriter(db.sessionmaker(engine), retention_days=0)
        try:
            for row in rows:
                writer.put(row)
            return await writer.flush(), writer.dropped, writer.threaded
        finally:
            await writer.aclose()
            await engine.dispose()

    return run_async(go())


@pytest.mark.parametrize("n", [1, BATCH + 3])
def test_every_row_of_a_batch_lands_as_it_was_made(database_url, n):
    cli_json(database_url, "keys", "create", "--name", "migrate-first", "--json")
    rows = _rows(n)
    assert _flush(database_url, rows) == (n, 0, database_url.startswith("sqlite"))
    stored = {r["request_id"]: r for r in usage_rows(database_url, [r.request_id for r in rows])}
    assert len(stored) == n
    for row in rows:
        got = stored[row.request_id]
        at = got["created_at"]
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at  # SQLite keeps UTC wall-clock time
        assert abs(at.timestamp() - row.created_at) < 1e-5
        assert tuple(got[name] for name in UsageRow._fields[1:]) == tuple(row)[1:]


def test_a_batch_the_database_refuses_is_counted_as_dropped(tmp_path):
    path = tmp_path / "refusing.db"
    database_url = f"sqlite+aiosqlite:///{path}"
    cli_json(database_url, "keys", "create", "--name", "migrate-first", "--json")
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TABLE usage_records")
    assert _flush(database_url, _rows(300)) == (0, 300, True)


def test_a_batch_is_laid_out_as_each_row_is_bound():
    rows = _rows(40)
    assert store.sqlite_values(rows) == [v for row in rows for v in store.sqlite_params(row)]
    # The time as SQLAlchemy writes a UTC datetime, rounded to the microsecond (into the next
    # second too), whichever second was written last.
    for stamp in (1_700_000_000.25, 1_700_000_001.999_999_7, 0.000_000_4, 1_700_000_000.000_001):
        expected = datetime.fromtimestamp(round(stamp, 6), UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        assert store.sqlite_params(rows[0]._replace(created_at=stamp))[0] == expected


def test_a_batch_is_split_into_few_statement_shapes():
    assert rows_per_insert(22, 32766) == 256
    assert rows_per_insert(22, 999) == 32
    values = [v for i in range(777) for v in (i, f"r{i}", i * 0.5)]
    chunks = split(values, 3, 256)
    # 777 = 3 * 256 + 8 + 1: three full INSERTs, then one per power of two of the rest.
    assert [size for size, _ in chunks] == [256, 256, 256, 8, 1]
    assert [v for _, part in chunks for v in part] == values
    assert all(len(part) == size * 3 for size, part in chunks)
    assert split([], 3, 256) == []


def test_the_writer_thread_syncs_the_file_as_the_server_does(tmp_path):
    sink = SqliteSink(str(tmp_path / "u.db"), "t", ("a",), 1.0)
    conn = sink._connect()
    try:
        assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL, not the default FULL (2)
    finally:
        conn.close()


@pytest.mark.parametrize("late", ["written", "refused"])
async def test_a_batch_still_waiting_for_the_database_counts_as_dropped_only_if_it_fails(tmp_path, monkeypatch, late):
    path = tmp_path / "busy.db"
    database_url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(cli_json, database_url, "keys", "create", "--name", "migrate-first", "--json")
    engine = db.create_engine(database_url)
    writer = UsageWriter(db.sessionmaker(engine), retention_days=0)  # its thread waits up to 30 s for the lock
    monkeypatch.setattr(writer_module, "WRITE_TIMEOUT", 0.3)  # the flush waits 0.3 s for it
    holder = write_lock(path)

    def let_go() -> None:
        if late == "refused":
            holder.execute("DROP TABLE usage_records")
        holder.execute("COMMIT")
        holder.close()

    release = threading.Timer(1.0, let_go)
    release.start()
    rows = _rows(20)
    try:
        for row in rows:
            writer.put(row)
        assert await writer.flush() == 0  # not written yet: the holder has the lock
        assert writer.dropped == 0
        release.join()
        await writer.aclose()  # the writer thread finishes the batch first
        await asyncio.sleep(0.1)  # the batch's outcome reaches the event loop
        if late == "written":
            assert writer.dropped == 0
            stored = await asyncio.to_thread(usage_rows, database_url, [r.request_id for r in rows])
            assert len(stored) == 20
        else:
            assert writer.dropped == 20
    finally:
        release.cancel()
        await engine.dispose()
