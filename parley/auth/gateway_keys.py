"""Gateway keys for /v1: create, list, revoke, and verify a presented key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.auth.cache import TTLCache
from parley.auth.keygen import display_prefix, hash_key, new_id, new_key
from parley.errors import NotFound, Unauthorized
from parley.storage.models import GatewayKey, now


@dataclass(frozen=True)
class KeyIdentity:
    id: str
    name: str


async def create(db: AsyncSession, name: str) -> tuple[GatewayKey, str]:
    key = new_key("sk-")
    row = GatewayKey(id=new_id("key_"), name=name, key_hash=hash_key(key), key_prefix=display_prefix(key))
    db.add(row)
    await db.commit()
    return row, key


async def list_all(db: AsyncSession) -> list[GatewayKey]:
    return list((await db.scalars(select(GatewayKey).order_by(GatewayKey.created_at))).all())


async def revoke(db: AsyncSession, key_id: str) -> GatewayKey:
    row = await db.get(GatewayKey, key_id)
    if row is None:
        raise NotFound(f"No gateway key with id {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = now()
        await db.commit()
    return row


class GatewayKeyVerifier:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: float) -> None:
        self._sessions = sessions
        self._cache: TTLCache[KeyIdentity] = TTLCache(ttl)

    async def verify(self, presented: str | None) -> KeyIdentity:
        if not presented:
            raise Unauthorized(
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code=None,
            )
        digest = hash_key(presented)
        hit = self._cache.get(digest)
        if hit is not None:
            return hit
        async with self._sessions() as db:
            row = await db.scalar(
                select(GatewayKey).where(GatewayKey.key_hash == digest, GatewayKey.revoked_at.is_(None))
            )
        if row is None:
            raise Unauthorized("Incorrect API key provided.")
        identity = KeyIdentity(row.id, row.name)
        self._cache.put(digest, identity)
        return identity
