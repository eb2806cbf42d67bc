"""API keys kept as sha256 digests: gateway keys (/v1) and project keys (integration API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.auth.cache import TTLCache
from parley.auth.keygen import display_prefix, hash_key, new_id, new_key
from parley.errors import NotFound, Unauthorized
from parley.storage.models import GatewayKey, ProjectKey, now


@dataclass(frozen=True)
class KeyIdentity:
    id: str
    owner: str | None  # the project a project key belongs to; None for gateway keys


async def create_gateway_key(db: AsyncSession, name: str) -> tuple[GatewayKey, str]:
    key = new_key("sk-")
    row = GatewayKey(id=new_id("key_"), name=name, key_hash=hash_key(key), key_prefix=display_prefix(key))
    db.add(row)
    await db.commit()
    return row, key


async def rename_gateway_key(db: AsyncSession, key_id: str, name: str) -> GatewayKey:
    row = await db.get(GatewayKey, key_id)
    if row is None:
        raise NotFound(f"No key with id {key_id!r}")
    row.name = name
    await db.commit()
    return row


async def get_gateway_key(db: AsyncSession, key_id: str) -> GatewayKey:
    row = await db.get(GatewayKey, key_id)
    if row is None:
        raise NotFound(f"No key with id {key_id!r}")
    return row


async def create_project_key(db: AsyncSession, project_id: str) -> tuple[ProjectKey, str]:
    key = new_key("pk-")
    row = ProjectKey(id=new_id("pkey_"), project_id=project_id, key_hash=hash_key(key), key_prefix=display_prefix(key))
    db.add(row)
    await db.commit()
    return row, key


async def list_keys(db: AsyncSession, table: type[GatewayKey] | type[ProjectKey]) -> list[Any]:
    return list((await db.scalars(select(table).order_by(table.created_at))).all())


Key = TypeVar("Key", GatewayKey, ProjectKey)


async def revoke(db: AsyncSession, table: type[Key], key_id: str) -> Key:
    row = await db.get(table, key_id)
    if row is None:
        raise NotFound(f"No key with id {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = now()
        await db.commit()
    return row


MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


class KeyVerifier:
    """Checks a presented key against one key table, trusting a hit for ``ttl`` seconds."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], table: type[GatewayKey] | type[ProjectKey], ttl: float
    ) -> None:
        self._sessions = sessions
        self._table = table
        self._cache: TTLCache[KeyIdentity] = TTLCache(ttl)

    async def verify(self, presented: str | None) -> KeyIdentity:
        if not presented:
            raise Unauthorized(MISSING_KEY, code=None)
        digest = hash_key(presented)
        identity = await self._cache.get_or_load(digest, lambda: self._lookup(digest))
        if identity is None:
            raise Unauthorized("Incorrect API key provided.")
        return identity

    async def _lookup(self, digest: str) -> KeyIdentity | None:
        table = self._table
        async with self._sessions() as db:
            found = await db.scalar(select(table).where(table.key_hash == digest, table.revoked_at.is_(None)))
        row = cast(GatewayKey | ProjectKey | None, found)
        return None if row is None else KeyIdentity(row.id, getattr(row, "project_id", None))
