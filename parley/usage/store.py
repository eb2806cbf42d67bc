"""The usage table: batches in, old rows out, totals for ``parley usage``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, Dialect, Table, and_, case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.errors import BadRequest
from parley.storage.models import UsageRecord
from parley.usage.record import UsageRow

Grouping = Literal["key", "project", "integration", "user", "model", "day"]
GROUPINGS: tuple[str, ...] = ("key", "project", "integration", "user", "model", "day")
COLUMNS = _COLUMNS = UsageRow._fields
FIELDS: dict[str, tuple[str, ...]] = {
    "key": ("key_id",),
    "project": ("project_id",),
    "integration": ("app_id",),
    "user": ("app_id", "user_id"),
    "model": ("model",),
    "day": ("day",),
}
TOTALS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_usd", "errors")
# A client that leaves mid-stream is not a failure of the request.
NOT_AN_ERROR = "client_disconnected"


TABLE = _TABLE = cast(Table, UsageRecord.__table__)

# Per dialect: the INSERT as the driver takes it, and how a row becomes its parameters.
_plans: dict[str, tuple[str, Callable[[UsageRow], tuple[Any, ...]]]] = {}


_second: list[Any] = [None, ""]  # the last whole second written, and its text up to the microseconds


def _sqlite_time(stamp: float) -> str:
    """Epoch seconds as SQLite keeps a datetime: UTC wall-clock text, as SQLAlchemy writes it
    ("2025-01-31 12:00:00.000000"). A batch's rows share a few seconds: each one's text is made
    once (a datetime's formatting cost more than the rest of a row's parameters together)."""
    whole, micro = divmod(round(stamp * 1_000_000), 1_000_000)
    if _second[0] != whole:
        _second[:] = [whole, time.strftime("%Y-%m-%d %H:%M:%S.", time.gmtime(whole))]
    second: str = _second[1]
    return second + str(1_000_000 + micro)[1:]  # the microseconds in six digits, cheaper than a format


def sqlite_params(row: UsageRow) -> tuple[Any, ...]:
    # Every value but the time is bound as it is.
    return (_sqlite_time(row[0]), *row[1:])


def sqlite_values(rows: Sequence[UsageRow]) -> list[Any]:
    """Every value of ``rows``, row after row, as ``sqlite_params`` makes them: the parameters
    of multi-row INSERTs. Made on the event loop for every row, so with list operations that
    run in C: each row's tuple is copied in whole, then every row's time replaced at once."""
    values: list[Any] = []
    for row in rows:
        values += row
    width = len(_COLUMNS)
    values[::width] = [_sqlite_time(stamp) for stamp in values[::width]]
    return values


def _postgres_params(row: UsageRow) -> tuple[Any, ...]:
    return (datetime.fromtimestamp(row[0], UTC), *row[1:])


def _plan(dialect: Dialect) -> tuple[str, Callable[[UsageRow], tuple[Any, ...]]]:
    plan = _plans.get(dialect.name)
    if plan is None:
        compiled = _TABLE.insert().inline().compile(dialect=dialect, column_keys=list(_COLUMNS))
        # A row's fields are the table's columns in order: the row is the parameters, but for
        # its time (epoch seconds in a row, a datetime in the table).
        assert tuple(compiled.positiontup or ()) == _COLUMNS, "a usage row lists the table's columns in order"
        plan = (str(compiled), sqlite_params if dialect.name == "sqlite" else _postgres_params)
        _plans[dialect.name] = plan
    return plan


async def insert_rows(db: AsyncSession, rows: list[UsageRow]) -> None:
    """One executemany of the whole batch, straight to the driver: SQLAlchemy's per-row work
    for a Core insert (parameter dicts, compiled parameters, multi-row VALUES) cost more than
    the rest of a request's accounting together."""
    conn = await db.connection()
    sql, params = _plan(conn.dialect)
    await conn.exec_driver_sql(sql, [params(r) for r in rows])
    await db.commit()


async def delete_before(db: AsyncSession, cutoff: datetime) -> int:
    result = await db.execute(delete(UsageRecord).where(UsageRecord.created_at < cutoff))
    await db.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def parse_since(text: str) -> datetime:
    """``2025-01-31`` (midnight UTC) or an ISO date-time (UTC unless it says otherwise)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"--since wants a date such as 2025-01-31, not {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _day(db: AsyncSession) -> ColumnElement[Any]:
    # SQLite keeps UTC wall-clock text; PostgreSQL a timestamptz, shown here in UTC.
    if db.bind is not None and db.bind.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", UsageRecord.created_at), "YYYY-MM-DD")
    return func.substr(UsageRecord.created_at, 1, 10)


async def totals(db: AsyncSession, by: Grouping | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
    """Requests, tokens, cost and errors, in total or per ``by`` (busiest first; days in order)."""
    if by is not None and by not in FIELDS:
        raise BadRequest(f"--by must be one of {', '.join(GROUPINGS)}")
    r = UsageRecord
    keys: list[ColumnElement[Any]] = []
    for name in FIELDS[by] if by else ():
        column = _day(db) if name == "day" else getattr(r, name)
        keys.append(column.label(name))
    failed = and_(r.error_code.is_not(None), r.error_code != NOT_AN_ERROR)
    query = select(
        *keys,
        func.count().label("requests"),
        func.coalesce(func.sum(r.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(r.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(r.cached_tokens), 0).label("cached_tokens"),
        func.coalesce(func.sum(r.reasoning_tokens), 0).label("reasoning_tokens"),
        func.coalesce(func.sum(r.cost_usd), 0.0).label("cost_usd"),
        func.coalesce(func.sum(case((failed, 1), else_=0)), 0).label("errors"),
    )
    if since is not None:
        query = query.where(r.created_at >= since)
    if keys:
        query = query.group_by(*keys)
        query = query.order_by(*keys) if by == "day" else query.order_by(func.count().desc(), *keys)
    rows = (await db.execute(query)).mappings().all()
    out = []
    for row in rows:
        item = dict(row)
        for name in TOTALS:
            if name != "cost_usd":
                item[name] = int(item[name])
        item["cost_usd"] = round(float(item["cost_usd"]), 8)
        out.append(item)
    return out
