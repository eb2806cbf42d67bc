"""The limits a key, project or integration has: set from the CLI, read (cached) by the gate.

A subject has at most one row per scope. ``user`` rows belong to an integration and apply to
each of its end users separately. A field left None means no such limit; setting a field to 0
removes it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.auth.cache import TTLCache
from parley.errors import BadRequest
from parley.storage.models import Limit

SCOPES = ("key", "project", "integration", "user")
PERIODS = ("day", "month")


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_streams: int | None = None
    budget_usd: float | None = None
    budget_period: str = "day"

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None and self.max_streams is None and self.budget_usd is None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


NONE = Limits()
FIELDS = ("rpm", "tpm", "max_streams", "budget_usd", "budget_period")


def _from_row(row: Limit | None) -> Limits:
    if row is None:
        return NONE
    return Limits(row.rpm, row.tpm, row.max_streams, row.budget_usd, row.budget_period or "day")


def check(changes: dict[str, Any]) -> dict[str, Any]:
    """Validated changes: only known fields; counts are whole and not negative; 0 means no limit."""
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if value is None:
            continue
        if name not in FIELDS:
            raise BadRequest(f"Unknown limit {name!r}")
        if name == "budget_period":
            if value not in PERIODS:
                raise BadRequest("The budget period must be 'day' or 'month'.", param=name)
            out[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise BadRequest(f"{name} must be a number of at least 0 (0 removes the limit).", param=name)
        if name != "budget_usd" and int(value) != value:
            raise BadRequest(f"{name} must be a whole number.", param=name)
        out[name] = None if value == 0 else (float(value) if name == "budget_usd" else int(value))
    return out


async def get(db: AsyncSession, scope: str, subject_id: str) -> Limits:
    return _from_row(await db.get(Limit, (scope, subject_id)))


async def get_many(db: AsyncSession, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Limits]:
    if not keys:
        return {}
    rows = await db.scalars(select(Limit).where(tuple_(Limit.scope, Limit.subject_id).in_(keys)))
    found = {(r.scope, r.subject_id): _from_row(r) for r in rows}
    return {k: found.get(k, NONE) for k in keys}


async def of_scope(db: AsyncSession, scope: str) -> dict[str, Limits]:
    """Every subject of one scope that has limits, by id."""
    rows = await db.scalars(select(Limit).where(Limit.scope == scope))
    return {r.subject_id: _from_row(r) for r in rows}


async def set_limits(db: AsyncSession, scope: str, subject_id: str, **changes: Any) -> Limits:
    """Change some limits of one subject (others stay); commits. Returns all of them."""
    if scope not in SCOPES:
        raise BadRequest(f"Unknown scope {scope!r}")
    valid = check(changes)
    if not valid:
        return await get(db, scope, subject_id)
    row = await db.get(Limit, (scope, subject_id))
    if row is None:
        row = Limit(scope=scope, subject_id=subject_id)
        db.add(row)
    for name, value in valid.items():
        setattr(row, name, value)
    await db.commit()
    return _from_row(row)


async def remove(db: AsyncSession, scope: str, subject_id: str) -> None:
    row = await db.get(Limit, (scope, subject_id))
    if row is not None:
        await db.delete(row)
        await db.commit()


def shown(limits: Limits) -> dict[str, Any]:
    """What list/show commands print: the limits that are set."""
    out = {k: v for k, v in limits.as_dict().items() if v is not None and k != "budget_period"}
    if limits.budget_usd is not None:
        out["budget_period"] = limits.budget_period
    return out


class LimitBook:
    """The limits of the subjects calling, cached like verified keys (``auth_cache_ttl``), so a
    change reaches a running server within that many seconds."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: float) -> None:
        self._sessions = sessions
        self.ttl = ttl
        self._cache: TTLCache[Limits] = TTLCache(ttl)
        self._loading: dict[tuple[str, str], asyncio.Future[Limits]] = {}

    async def lookup(self, keys: list[tuple[str, str]]) -> list[Limits]:
        out: list[Limits | None] = [self._cache.get(f"{s}\0{i}") for s, i in keys]
        missing = [k for k, hit in zip(keys, out, strict=True) if hit is None]
        if missing:
            loaded = await self._load(missing)
            out = [hit if hit is not None else loaded[k] for k, hit in zip(keys, out, strict=True)]
        return [x if x is not None else NONE for x in out]

    async def reload(self, keys: list[tuple[str, str]]) -> list[Limits]:
        """Read from the database whatever the cache holds (and cache what was read)."""
        loaded = await self._load(keys)
        return [loaded.get(k, NONE) for k in keys]

    async def _load(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Limits]:
        # One query for a burst of requests from the same subjects: later ones wait for it.
        waiting = {k: self._loading[k] for k in keys if k in self._loading}
        todo = [k for k in keys if k not in waiting]
        result: dict[tuple[str, str], Limits] = {}
        if todo:
            loop = asyncio.get_running_loop()
            mine = {k: loop.create_future() for k in todo}
            self._loading.update(mine)
            try:
                async with self._sessions() as db:
                    result = await get_many(db, todo)
            except BaseException as exc:
                for f in mine.values():
                    if isinstance(exc, Exception):
                        f.set_exception(exc)
                        f.exception()  # marked as seen: there may be nobody else waiting
                    else:
                        f.cancel()
                raise
            finally:
                for k in todo:
                    self._loading.pop(k, None)
            for k, value in result.items():
                self._cache.put(f"{k[0]}\0{k[1]}", value)
                mine[k].set_result(value)
        for k, f in waiting.items():
            result[k] = await asyncio.shield(f)
        return result
