"""Telling "the database is unreachable" apart from other failures, so it can be answered as
what it is: a 503 with Retry-After (the client should come back shortly), not a 500.

Unreachable means: no connection could be opened (refused, no socket, connect timeout), a
pooled connection died (the server restarted or was stopped), the server is starting or shutting
down, it refuses more connections, no pooled connection came free within ``pool_timeout``, or
SQLite stayed locked past its busy timeout.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from parley.errors import ParleyError

RETRY_AFTER_SECONDS = 2
# PostgreSQL SQLSTATEs: class 08 is "connection exception"; 57P01-57P03 are admin shutdown,
# crash shutdown and "cannot connect now" (starting up); 53300 is too many connections.
_OUTAGE_STATES = ("57P01", "57P02", "57P03", "53300")
_OUTAGE_TEXT = ("connection is closed", "connection was closed", "database is locked", "the database system is")
_DRIVERS = ("/sqlalchemy/", "/asyncpg/", "/aiosqlite/")


class DatabaseUnavailable(ParleyError):
    status = 503
    type = "server_error"
    code = "database_unavailable"


def unavailable() -> DatabaseUnavailable:
    return DatabaseUnavailable(
        "The database is unavailable at the moment; retry shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _sqlstate(exc: DBAPIError) -> str | None:
    for err in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(err, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def _from_driver(tb: TracebackType | None) -> bool:
    while tb is not None:
        if any(part in tb.tb_frame.f_code.co_filename for part in _DRIVERS):
            return True
        tb = tb.tb_next
    return False


def is_database_outage(exc: BaseException) -> bool:
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        state = _sqlstate(exc)
        if state is not None and (state.startswith("08") or state in _OUTAGE_STATES):
            return True
        return any(text in str(exc.orig).lower() for text in _OUTAGE_TEXT)
    if isinstance(exc, OSError):  # refused, reset, socket gone, connect timed out: if the driver's
        return _from_driver(exc.__traceback__)
    return False
