"""v8 integrations (tenants): their signing secrets, and token verification against them."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.auth import v8_tokens
from parley.auth.cache import TTLCache
from parley.auth.sealed import ServerKey, seal, unseal
from parley.errors import NotFound, Unauthorized
from parley.storage.models import Integration, Limit, iso


def _secret() -> str:
    return secrets.token_hex(24)


async def create(
    db: AsyncSession,
    key: ServerKey,
    name: str,
    default_model: str | None = None,
    default_embedding_model: str | None = None,
) -> tuple[Integration, str, str]:
    hash_token, admin_token = _secret(), _secret()
    row = Integration(
        id=str(uuid.uuid4()),
        name=name,
        hash_token_sealed=seal(key, hash_token),
        admin_token_sealed=seal(key, admin_token),
        default_model=default_model,
        default_embedding_model=default_embedding_model,
    )
    db.add(row)
    await db.commit()
    return row, hash_token, admin_token


async def get(db: AsyncSession, app_id: str) -> Integration:
    row = await db.get(Integration, app_id)
    if row is None:
        raise NotFound(f"Integration {app_id!r} not found")
    return row


async def list_all(db: AsyncSession) -> list[Integration]:
    return list((await db.scalars(select(Integration).order_by(Integration.created_at))).all())


async def update(db: AsyncSession, app_id: str, **fields: Any) -> Integration:
    """Change ``name``, ``default_model`` or ``default_embedding_model`` (None: unchanged)."""
    row = await get(db, app_id)
    for name in ("name", "default_model", "default_embedding_model"):
        if fields.get(name) is not None:
            setattr(row, name, fields[name])
    await db.commit()
    return row


async def rotate(db: AsyncSession, key: ServerKey, app_id: str, which: str) -> dict[str, str]:
    """Replace ``hash_token``, ``admin_token`` or both; tokens signed with the old ones stop working."""
    row = await get(db, app_id)
    fresh: dict[str, str] = {}
    if which in ("hash_token", "both"):
        fresh["hash_token"] = _secret()
        row.hash_token_sealed = seal(key, fresh["hash_token"])
    if which in ("admin_token", "both"):
        fresh["admin_token"] = _secret()
        row.admin_token_sealed = seal(key, fresh["admin_token"])
    await db.commit()
    return fresh


async def remove(db: AsyncSession, app_id: str) -> None:
    await get(db, app_id)
    # Conversations, messages, memories, contents and chunks go with it: the database cascades
    # (see storage/models.py).
    # Limits name their subject without a foreign key (one table for every scope): removed here.
    await db.execute(delete(Limit).where(Limit.scope.in_(("integration", "user")), Limit.subject_id == app_id))
    await db.execute(delete(Integration).where(Integration.id == app_id))
    await db.commit()


def secrets_of(key: ServerKey, row: Integration) -> tuple[str | None, str | None]:
    return unseal(key, row.hash_token_sealed), unseal(key, row.admin_token_sealed)


def as_dict(row: Integration) -> dict[str, Any]:
    return {
        "app_id": row.id,
        "name": row.name,
        "default_model": row.default_model,
        "default_embedding_model": row.default_embedding_model,
        "created_at": iso(row.created_at),
    }


class TokenVerifier:
    """Verifies ek-/ak- tokens; an integration's secrets are cached for ``ttl`` seconds."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], key: ServerKey, ttl: float) -> None:
        self._sessions = sessions
        self._key = key
        self._cache: TTLCache[tuple[str | None, str | None, Integration]] = TTLCache(ttl)

    async def integration(self, app_id: str) -> tuple[str | None, str | None, Integration] | None:
        # The shared cache's loader: concurrent misses share one lookup, and an integration in
        # use is looked up again in the background before it expires (parley/auth/cache.py).
        return await self._cache.get_or_load(app_id, lambda: self._lookup(app_id))

    async def _lookup(self, app_id: str) -> tuple[str | None, str | None, Integration] | None:
        async with self._sessions() as db:
            row = await db.get(Integration, app_id)
        if row is None:
            return None
        await self._key.ready()
        return (*secrets_of(self._key, row), row)

    async def verify(self, authorization: str | None) -> tuple[v8_tokens.V8Identity, Integration]:
        is_admin, payload = v8_tokens.parse(authorization)
        found = await self.integration(payload["app_id"])
        if found is None:
            raise Unauthorized(v8_tokens.INVALID, code="invalid_api_key")
        hash_token, admin_token, row = found
        return v8_tokens.verify(is_admin, payload, admin_token if is_admin else hash_token), row
