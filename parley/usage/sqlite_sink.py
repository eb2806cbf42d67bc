"""Usage rows into a SQLite file from a thread of its own, a few statements per batch.

Through the server's own connections (aiosqlite) a batch of N rows costs N statement steps on
aiosqlite's thread, and after each step that thread takes the GIL back from the event loop (so
does the statement-deadline progress handler, every thousand SQLite steps). Under load the loop
and that thread then hand the GIL to each other hundreds of times a second, each time after
the interpreter's switch interval, and the loop stands waiting for it. Here the event loop
lays a batch out as the parameters of a few multi-row INSERTs (``split``) and a writer thread
runs them in one transaction: each INSERT binds its parameters in C and then runs in SQLite
without the GIL, so a batch of thousands of rows takes the GIL from the loop a dozen times.
The thread sleeps on its queue between batches, and WAL checkpoints run there too.
"""

from __future__ import annotations

import concurrent.futures
import queue
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

# A batch as INSERTs: (rows in it, every parameter of those rows in order).
Chunks = list[tuple[int, list[Any]]]
_Job = tuple[Chunks, "concurrent.futures.Future[int]"]


def _null(value: None) -> None:
    return None


# sqlite3 binds a str, int or float as it is, but treats None and a bool as objects to adapt:
# it looks for a registered adapter, then asks the protocol, then the object, and on Python
# 3.11 each failed lookup builds an AttributeError's message only to discard it. That was a
# third of the writer's work: a usage row has up to seven None values and a bool. With an
# adapter registered for each the first lookup finds it, and NULL and 0/1 are bound as before.
# The registry is the sqlite3 module's, so the server's other connections bind them the same
# way, only sooner.
sqlite3.register_adapter(type(None), _null)
sqlite3.register_adapter(bool, int)

# Rows per INSERT: a power of two, so a batch is made of few statement shapes (prepared once,
# then taken from the connection's statement cache), and within SQLite's parameter limit.
MOST_ROWS = 256


def rows_per_insert(columns: int, parameter_limit: int) -> int:
    rows = MOST_ROWS
    while rows > 1 and rows * columns > parameter_limit:
        rows //= 2
    return rows


def split(values: list[Any], width: int, most: int) -> Chunks:
    """``values`` (``width`` per row, row after row) as INSERTs of ``most`` rows, then one
    INSERT per power of two of the rest (at most log2(most) more)."""
    chunks: Chunks = []
    rows = len(values) // width
    start, size = 0, most
    while start < rows:
        while size > rows - start:
            size //= 2
        chunks.append((size, values[start * width : (start + size) * width]))
        start += size
    return chunks


class SqliteSink:
    """A writer thread with its own connection to the database file, started by the first batch."""

    def __init__(self, path: str, table: str, columns: Sequence[str], busy_timeout: float) -> None:
        self._path = path
        self._head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        self._one = "(" + ", ".join("?" * len(columns)) + ")"
        self._busy_timeout = busy_timeout  # seconds a batch waits for another writer's lock
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.most = rows_per_insert(len(columns), self._parameter_limit())

    def _parameter_limit(self) -> int:
        with sqlite3.connect(":memory:") as probe:
            return probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def write(self, chunks: Chunks) -> concurrent.futures.Future[int]:
        """Queue one batch (``split``); the future gives the rows inserted, or the error."""
        done: concurrent.futures.Future[int] = concurrent.futures.Future()
        if self._thread is None:
            # A daemon: a server that never stops it cleanly still exits.
            self._thread = threading.Thread(target=self._run, name="parley-usage-writer", daemon=True)
            self._thread.start()
        self._jobs.put((chunks, done))
        return done

    def close(self, timeout: float = 10.0) -> None:
        """Let the thread finish what is queued, then close its connection."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _connect(self) -> sqlite3.Connection:
        # Transactions are begun and ended here, explicitly. The server's connections put the
        # file in WAL mode already; busy_timeout makes this writer wait its turn beside them.
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
        # As on the server's own connections (synchronous is per connection): in WAL mode a
        # commit then waits for no fsync; a power cut may lose the last batches, never the file.
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _insert(self, rows: int) -> str:
        return self._head + ", ".join([self._one] * rows)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        statements: dict[int, str] = {}
        while (job := self._jobs.get()) is not None:
            chunks, done = job
            if not done.set_running_or_notify_cancel():
                continue
            try:
                if conn is None:
                    conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                written = 0
                for rows, values in chunks:
                    sql = statements.get(rows) or statements.setdefault(rows, self._insert(rows))
                    conn.execute(sql, values)
                    written += rows
                conn.execute("COMMIT")
                done.set_result(written)
            except Exception as exc:  # noqa: BLE001 - handed to the waiting flush, which counts the rows dropped
                done.set_exception(exc)
                if conn is not None:  # the next batch starts on a new connection (its transaction undone)
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()
