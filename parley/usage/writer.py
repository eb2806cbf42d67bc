"""Usage rows go into an in-process buffer on the request path and out to the database in
batches from a background task, so a failing or slow database never slows or fails a request.

When the database cannot keep up the buffer stops growing at ``max_pending`` rows and further
rows are dropped; rows a failed batch held are dropped too. Either way they are counted
(``parley_usage_rows_dropped_total``) and logged.

A SQLite file gets its batches through a writer thread of its own (sqlite_sink.py), a
few statements each; PostgreSQL's through the server's pool (asyncpg runs on the event loop: one
pipelined executemany, no thread to hand the GIL to).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from parley import metrics
from parley.storage.models import now
from parley.usage import store
from parley.usage.record import UsageRow
from parley.usage.sqlite_sink import SqliteSink, split

log = logging.getLogger("parley.usage")

BATCH = 1000
WRITE_TIMEOUT = 30.0  # seconds one batch may take before it is given up (and its rows dropped)
RETENTION_EVERY = 3600.0  # seconds between deletions of rows past the retention period


class UsageWriter:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], retention_days: int, max_pending: int = 100_000
    ) -> None:
        self._sessions = sessions
        self._rows: list[UsageRow] = []
        self.max_pending = max_pending
        self.retention_days = retention_days
        self.dropped = 0
        self._last_retention = -RETENTION_EVERY  # the first sync already deletes
        self._last_warning = 0.0
        self._sink = _sqlite_sink(sessions)

    def put(self, row: UsageRow) -> None:
        """On the request path: O(1), never waits."""
        if len(self._rows) >= self.max_pending:
            self._drop(1, "the usage buffer is full (the database is not keeping up)")
            return
        self._rows.append(row)

    @property
    def threaded(self) -> bool:
        """Whether batches go through a writer thread of its own (a SQLite file)."""
        return self._sink is not None

    @property
    def pending(self) -> int:
        return len(self._rows)

    def _drop(self, n: int, why: str) -> None:
        self.dropped += n
        metrics.usage_rows_dropped(n)
        stamp = time.monotonic()
        if stamp - self._last_warning > 10:  # at most one line per 10 s, however many drop
            self._last_warning = stamp
            log.warning("usage rows dropped", extra={"fields": {"rows": n, "dropped_total": self.dropped, "why": why}})

    async def flush(self) -> int:
        """Write everything buffered so far; returns the rows written."""
        rows, self._rows = self._rows, []
        if not rows:
            return 0
        if self._sink is not None:
            return await self._flush_to(self._sink, rows)
        written = 0
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            try:
                async with asyncio.timeout(WRITE_TIMEOUT), self._sessions() as db:
                    await store.insert_rows(db, batch)
                written += len(batch)
            except Exception as exc:  # noqa: BLE001 - the database failing must not stop accounting
                self._failed(len(batch), exc)
        return written

    async def _flush_to(self, sink: SqliteSink, rows: list[UsageRow]) -> int:
        # Every parameter is laid out here, on the loop: Python code on the writer thread would
        # take the GIL from the loop for a switch interval at a time.
        chunks = split(store.sqlite_values(rows), len(store.COLUMNS), sink.most)
        written = asyncio.wrap_future(sink.write(chunks))
        try:
            # Shielded: a batch the thread has started is written whatever this wait does.
            await asyncio.wait_for(asyncio.shield(written), WRITE_TIMEOUT)
        except TimeoutError:
            # Still under way (waiting for the database's write lock, say): its rows count as
            # dropped only if it fails in the end.
            written.add_done_callback(functools.partial(self._late, len(rows)))
            return 0
        except Exception as exc:  # noqa: BLE001 - the database failing must not stop accounting
            self._failed(len(rows), exc)
            return 0
        return len(rows)

    def _late(self, n: int, written: asyncio.Future[None]) -> None:
        if not written.cancelled() and (exc := written.exception()) is not None:
            self._failed(n, exc)

    def _failed(self, n: int, exc: BaseException) -> None:
        self._drop(n, f"{type(exc).__name__}: {exc}"[:300])

    async def aclose(self) -> None:
        """Stop the writer thread, if there is one (after the last flush)."""
        if self._sink is not None:
            await asyncio.to_thread(self._sink.close)

    async def expire(self) -> None:
        """Delete rows older than the retention period (at most hourly; 0 days keeps them all)."""
        stamp = time.monotonic()
        if self.retention_days <= 0 or stamp - self._last_retention < RETENTION_EVERY:
            return
        self._last_retention = stamp
        try:
            async with asyncio.timeout(WRITE_TIMEOUT), self._sessions() as db:
                deleted = await store.delete_before(db, now() - timedelta(days=self.retention_days))
            if deleted:
                log.info("old usage rows deleted", extra={"fields": {"rows": deleted, "days": self.retention_days}})
        except Exception:  # noqa: BLE001 - retried at the next period
            log.warning("deleting old usage rows failed", exc_info=True)


def _sqlite_sink(sessions: async_sessionmaker[AsyncSession]) -> SqliteSink | None:
    """A writer thread for a SQLite database in a file (not for one in memory: a connection of
    its own would see another database)."""
    engine = sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "sqlite":
        return None
    path = engine.url.database
    if not path or path == ":memory:" or path.startswith("file:") or engine.url.query:
        return None
    return SqliteSink(path, store.TABLE.name, store.COLUMNS, WRITE_TIMEOUT)
