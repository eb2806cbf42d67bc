"""Memories and their contents: create, change, list, delete; each change queues its chunks."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.errors import BadRequest, NotFound, ParleyError
from parley.memory import chunking
from parley.memory.filters import bounded, content_conditions
from parley.storage.models import Memory, MemoryChunk, MemoryContent, iso, new_uuid, now


def memory_dict(m: Memory) -> dict[str, Any]:
    return {
        "id": m.id,
        "name": m.name,
        "description": m.description,
        "embedding_model": m.embedding_model,
        "status": m.status,
        "max_tokens_per_chunk": m.max_tokens_per_chunk,
        "overlap_tokens": m.overlap_tokens,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


def content_dict(c: MemoryContent) -> dict[str, Any]:
    return {
        "id": c.id,
        "content": c.content,
        "content_type": c.content_type,
        "key": c.key,
        "attrs": c.attrs,
        "status": c.status,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }


def chunk_dict(c: MemoryChunk) -> dict[str, Any]:
    out = {
        "id": c.id,
        "content_id": c.content_id,
        "chunk_index": c.chunk_index,
        "content": c.content,
        "token_count": c.token_count,
        "embedding_status": c.embedding_status,
        "created_at": iso(c.created_at),
    }
    if c.embedding_error:
        out["embedding_error"] = c.embedding_error
    return out


async def get_memory(db: AsyncSession, integration_id: str, memory_id: str) -> Memory:
    row = await db.get(Memory, memory_id)
    if row is None or row.integration_id != integration_id:
        raise NotFound("Memory not found")
    return row


async def list_memories(db: AsyncSession, integration_id: str) -> list[Memory]:
    rows = await db.scalars(select(Memory).where(Memory.integration_id == integration_id).order_by(Memory.created_at))
    return list(rows.all())


async def delete_memory(db: AsyncSession, memory: Memory) -> None:
    # Contents and chunks go with it: the database cascades (see storage/models.py).
    await db.execute(delete(Memory).where(Memory.id == memory.id))
    await db.commit()


async def _add_chunks(db: AsyncSession, memory: Memory, content_id: str, version: int, text: str) -> None:
    """The content's chunks, queued for embedding: one Core INSERT however many there are (the
    ORM's unit of work would cost more CPU than the statement itself)."""
    rows = [
        {
            "id": new_uuid(),
            "memory_id": memory.id,
            "content_id": content_id,
            "version": version,
            "chunk_index": c.index,
            "content": c.text,
            "token_count": c.token_count,
        }
        for c in chunking.split(text, memory.max_tokens_per_chunk, memory.overlap_tokens)
    ]
    if rows:
        await db.execute(_CHUNKS, rows if len(rows) > 1 else rows[0])


# Statements built once and given their values at execution: SQLAlchemy then finds them
# compiled in its cache instead of compiling a new statement for each content.
_CHUNKS = insert(cast(Table, MemoryChunk.__table__))
_NEW = {
    name: dialect.insert(cast(Table, MemoryContent.__table__))
    .on_conflict_do_nothing(index_elements=[MemoryContent.memory_id, MemoryContent.key])
    .returning(MemoryContent.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}  # a new content, unless its key is taken (then nothing, and no row returned)
_MEMORIES = cast(Table, Memory.__table__)
_TOUCH = update(_MEMORIES).where(_MEMORIES.c.id == bindparam("memory_id")).values(updated_at=bindparam("stamp"))


async def put_content(
    db: AsyncSession, memory: Memory, fields: dict[str, Any], content_id: str | None = None
) -> tuple[MemoryContent, bool]:
    """Create or replace a content (by id, else by key); returns (content, created).

    A replaced content gets a new version; its new chunks queue for embedding while the old
    ones keep answering searches (see jobs.py for the swap). Chunking runs here, not the
    embedding: the request returns at once.
    """
    memory_id = memory.id  # read now: the rollback below expires the object
    try:
        return await _put_content(db, memory, fields, content_id)
    except IntegrityError:
        # The memory's unique key index refused the write: another request took this key
        # between the lookup and the write. Or the foreign key did: the memory was deleted
        # meanwhile (a 404). Nothing of this one was kept.
        await db.rollback()
        if await db.get(Memory, memory_id, populate_existing=True) is None:  # refreshes `memory`
            raise NotFound("Memory not found") from None
        if content_id is not None:
            raise _key_taken(fields["key"]) from None
        # A create by key: the content that request made is there now, and this one replaces
        # it, as it would have had the two come one after the other.
        return await _put_content(db, memory, fields, content_id)


def _key_taken(key: str) -> ParleyError:
    return ParleyError(f"Another content of this memory has the key {key!r}", status=409, param="key")


async def _hold_memory(db: AsyncSession, memory: Memory) -> None:
    """Hold the memory's row (PostgreSQL, key-share mode) before any content or chunk row.

    Every writer takes the memory first, then contents, then chunks (the embedding worker
    too, see jobs.py). A deletion of the memory at the same moment then waits for this write
    to finish, or this write finds the memory gone (404), instead of the two deadlocking or
    the write failing on a content the deletion took away under it.
    """
    if db.get_bind().dialect.name != "postgresql":
        return  # SQLite has one writer at a time
    held = await db.scalar(select(Memory.id).where(Memory.id == memory.id).with_for_update(read=True, key_share=True))
    if held is None:
        raise NotFound("Memory not found")


async def _put_content(
    db: AsyncSession, memory: Memory, fields: dict[str, Any], content_id: str | None
) -> tuple[MemoryContent, bool]:
    existing: MemoryContent | None = None
    stamp = now()
    if content_id is None:
        # A create is one INSERT (Core, not the ORM's unit of work); a key that is taken makes
        # it a replace, found by the lookup below.
        values: dict[str, Any] = {
            "id": new_uuid(),
            "memory_id": memory.id,
            "version": 1,
            "created_at": stamp,
            "updated_at": stamp,
        }
        values.update(fields)
        made = await db.scalar(_NEW[db.get_bind().dialect.name], values)
        if made is not None:
            await _add_chunks(db, memory, made, 1, values["content"])
            await touch(db, memory.id)
            await db.commit()
            return MemoryContent(**values), True
    # A replace: the memory first (a create's INSERT took it already, by its foreign key check).
    await _hold_memory(db, memory)
    if content_id is not None:
        existing = await db.get(MemoryContent, content_id)
        if existing is None or existing.memory_id != memory.id:
            raise NotFound("Content not found")
        key = fields.get("key")
        if key is not None and key != existing.key:
            holder = await db.scalar(
                select(MemoryContent.id).where(MemoryContent.memory_id == memory.id, MemoryContent.key == key)
            )
            if holder is not None:  # keys are unique in a memory: refused, nothing changed
                raise _key_taken(key)
    elif fields.get("key") is not None:
        existing = await db.scalar(
            select(MemoryContent).where(MemoryContent.memory_id == memory.id, MemoryContent.key == fields["key"])
        )
    if existing is None:  # its key was taken a moment ago and is free again: a create after all
        return await _put_content(db, memory, fields, None)
    content = existing
    text_changed = content.content != fields["content"]
    for name, value in fields.items():
        setattr(content, name, value)
    content.updated_at = stamp
    if not text_changed:
        await touch(db, memory.id)
        await db.commit()
        return content, False
    content.version += 1
    # Chunks of versions that never became active are superseded: drop them now.
    await db.execute(delete(MemoryChunk).where(MemoryChunk.content_id == content.id, MemoryChunk.active.is_(False)))
    await _add_chunks(db, memory, content.id, content.version, content.content)
    await touch(db, memory.id)
    await db.commit()
    return content, False


async def get_content(db: AsyncSession, memory: Memory, content_id: str) -> MemoryContent:
    row = await db.get(MemoryContent, content_id)
    if row is None or row.memory_id != memory.id:
        raise NotFound("Content not found")
    return row


async def delete_content(db: AsyncSession, memory: Memory, content_id: str) -> None:
    """By id, or by key when the id starts with "_" (``DELETE …/contents/_KEY``, docs/protocol.md)."""
    await _hold_memory(db, memory)
    if content_id.startswith("_"):
        row = await db.scalar(
            select(MemoryContent).where(MemoryContent.memory_id == memory.id, MemoryContent.key == content_id[1:])
        )
        if row is None:
            raise NotFound("Content not found")
    else:
        row = await get_content(db, memory, content_id)
    await db.execute(delete(MemoryContent).where(MemoryContent.id == row.id))  # its chunks cascade
    await bump(db, memory.id)
    await touch(db, memory.id)
    await db.commit()


async def bump(db: AsyncSession, memory_id: str) -> None:
    await db.execute(update(Memory).where(Memory.id == memory_id).values(index_version=Memory.index_version + 1))


async def touch(db: AsyncSession, memory_id: str) -> None:
    """A content changed (text, status, attributes): searches recompute their filter masks."""
    await db.execute(_TOUCH, {"memory_id": memory_id, "stamp": now()})


async def list_contents(db: AsyncSession, memory: Memory, content_filter: dict[str, Any] | None) -> list[MemoryContent]:
    conditions = content_conditions(content_filter, db.get_bind().dialect.name)
    async with bounded(db, conditions):
        rows = await db.scalars(
            select(MemoryContent)
            .where(MemoryContent.memory_id == memory.id, *conditions)
            .order_by(MemoryContent.created_at, MemoryContent.id)
        )
        return list(rows.all())


async def chunks_of(db: AsyncSession, content: MemoryContent) -> list[MemoryChunk]:
    """The newest version's chunks (the ones being embedded, or already answering)."""
    rows = await db.scalars(
        select(MemoryChunk)
        .where(MemoryChunk.content_id == content.id, MemoryChunk.version == content.version)
        .order_by(MemoryChunk.chunk_index)
    )
    return list(rows.all())


async def create_memory(
    db: AsyncSession,
    integration_id: str,
    name: str,
    *,
    embedding_model: str,
    available_models: list[str],
    description: str | None = None,
    max_tokens_per_chunk: int = 1024,
    overlap_tokens: int = 0,
) -> Memory:
    """A new memory, checked the same way whoever creates it (the API or the CLI)."""
    if embedding_model not in available_models:
        raise BadRequest(
            f"Unknown embedding_model {embedding_model!r}. Available: {', '.join(available_models)}",
            param="embedding_model",
        )
    if overlap_tokens >= max_tokens_per_chunk:
        raise BadRequest("overlap_tokens must be smaller than max_tokens_per_chunk", param="overlap_tokens")
    row = Memory(
        integration_id=integration_id,
        name=name,
        description=description,
        embedding_model=embedding_model,
        max_tokens_per_chunk=max_tokens_per_chunk,
        overlap_tokens=overlap_tokens,
    )
    db.add(row)
    await db.commit()
    return row


async def update_memory(db: AsyncSession, integration_id: str, memory_id: str, fields: dict[str, Any]) -> Memory:
    """Set ``name``, ``description`` (None clears it) or ``status``; other keys are ignored."""
    row = await get_memory(db, integration_id, memory_id)
    for name, value in fields.items():
        if name in ("name", "status") and value is not None or name == "description":
            setattr(row, name, value)
    row.updated_at = now()
    await db.commit()
    return row
