"""Background embedding: the chunks table is a durable queue, worked in batches.

A worker claims up to ``BATCH`` due chunks under a lease (pending ones, and processing ones
whose lease has run out — work a stopped server left behind), embeds them per memory, stores
vectors and BM25 terms, and marks them completed. A failure sends a chunk back to pending
with a growing delay; after ``MAX_ATTEMPTS`` it stays in ``error`` with the message kept.
When every chunk of a content's newest version is completed, that version becomes the
searchable one and older ones are deleted, in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.config import LOCAL_EMBEDDING_MODEL
from parley.memory.store import bump
from parley.memory.terms import terms
from parley.storage.models import Memory, MemoryChunk, MemoryContent, now
from parley.storage.outage import is_database_outage

log = logging.getLogger("parley.embedding")

BATCH = 64
MAX_ATTEMPTS = 3


class EmbeddingWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        router: Any,
        lease_seconds: float = 120.0,
        poll_seconds: float = 1.0,
        retry_delay: float = 2.0,
    ) -> None:
        self.sessions = sessions
        self.router = router
        self.lease = timedelta(seconds=lease_seconds)
        self.poll = poll_seconds
        self.retry_delay = retry_delay
        self.token = secrets.token_hex(8)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="parley-embedding")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        """New work was queued in this process: look now rather than at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        outage = False  # the database was unreachable at the last poll
        while True:
            try:
                worked = await self.run_once()
                if outage:
                    log.warning("embedding worker: the database is reachable again")
                    outage = False
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any one bad batch
                if not is_database_outage(exc):
                    log.exception("embedding batch failed")
                elif not outage:  # one line per outage, not a traceback per poll
                    log.warning("embedding worker: the database is unreachable; retrying every %.1f s", self.poll)
                    outage = True
                worked = 0
            if not worked:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)

    async def run_until_idle(self) -> int:
        total = 0
        while n := await self.run_once():
            total += n
        return total

    async def _claim(self) -> list[MemoryChunk]:
        stamp = now()
        due = or_(
            and_(MemoryChunk.embedding_status == "pending", MemoryChunk.not_before <= stamp),
            and_(MemoryChunk.embedding_status == "processing", MemoryChunk.locked_until < stamp),
        )
        async with self.sessions() as db:
            # Most polls find nothing queued. A read first, so that such a poll takes no write
            # lock (SQLite's one lock, which usage rows and limit counters wait for) and makes
            # fewer calls to the database's thread. Chunks this worker already holds (a batch that
            # failed half way) count as found: they are taken up again at once.
            ours = and_(MemoryChunk.embedding_status == "processing", MemoryChunk.lease_token == self.token)
            if await db.scalar(select(MemoryChunk.id).where(or_(due, ours)).limit(1)) is None:
                return []
            pick = select(MemoryChunk.id).where(due).order_by(MemoryChunk.created_at).limit(BATCH)
            if db.get_bind().dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            await db.execute(
                update(MemoryChunk)
                .where(MemoryChunk.id.in_(pick.scalar_subquery()), due)
                .values(
                    embedding_status="processing",
                    lease_token=self.token,
                    locked_until=stamp + self.lease,
                    attempts=MemoryChunk.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            await db.commit()
            rows = await db.scalars(select(MemoryChunk).where(ours))
            return list(rows.all())

    async def run_once(self) -> int:
        chunks = await self._claim()
        if not chunks:
            return 0
        by_memory: dict[str, list[MemoryChunk]] = defaultdict(list)
        for c in chunks:
            by_memory[c.memory_id].append(c)
        for memory_id, group in by_memory.items():
            await self._embed_group(memory_id, group)
        return len(chunks)

    async def _embed_group(self, memory_id: str, group: list[MemoryChunk]) -> None:
        async with self.sessions() as db:
            memory = await db.get(Memory, memory_id)
        if memory is None:  # deleted meanwhile
            await self._finish(group, None, None, "memory deleted")
            return
        texts = [c.content for c in group]
        try:
            bags_soon = asyncio.to_thread(lambda: [" ".join(terms(t, document=True)) for t in texts])
            if memory.embedding_model == LOCAL_EMBEDDING_MODEL:
                # One after the other: the packaged model already keeps every core busy, and
                # jieba (pure Python) beside it in a thread holds the GIL its numpy calls wait for
                # in between (ingestion 58-64 paragraphs/s side by side, 75 one after the other).
                result = await self.router.embed(memory.embedding_model, texts)
                bags = await bags_soon
            else:  # an upstream model: segment while waiting for it
                result, bags = await asyncio.gather(self.router.embed(memory.embedding_model, texts), bags_soon)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then reported per chunk
            log.warning("embedding failed", extra={"fields": {"memory": memory_id, "error": str(exc)[:300]}})
            await self._finish(group, None, None, f"{type(exc).__name__}: {exc}"[:1000])
            return
        await self._finish(group, result.vectors, bags, None)

    async def _finish(
        self, group: list[MemoryChunk], vectors: list[list[float]] | None, bags: list[str] | None, error: str | None
    ) -> None:
        table = cast(Table, MemoryChunk.__table__)
        # Only rows this worker still holds: a chunk deleted or re-leased meanwhile is left alone.
        mine = and_(table.c.id == bindparam("chunk_id"), table.c.lease_token == self.token)
        released = {"lease_token": None, "locked_until": None}
        content_ids = {c.content_id for c in group}
        async with self.sessions() as db:
            await _lock_contents(db, content_ids)
            if error is None:
                assert vectors is not None and bags is not None
                rows = [
                    {
                        "chunk_id": c.id,
                        "embedding": vectors[i],
                        "dims": len(vectors[i]),
                        "terms": bags[i],
                    }
                    for i, c in enumerate(group)
                ]
                done: dict[str, Any] = dict(
                    released,
                    embedding_status="completed",
                    embedding_error=None,
                    embedding=bindparam("embedding"),
                    dims=bindparam("dims"),
                    terms=bindparam("terms"),
                )
                await db.execute(update(table).where(mine).values(done), rows)
            else:
                for chunk in group:
                    if chunk.attempts >= MAX_ATTEMPTS:
                        values: dict[str, Any] = {"embedding_status": "error"}
                    else:
                        delay = self.retry_delay * 2 ** (chunk.attempts - 1)
                        values = {"embedding_status": "pending", "not_before": now() + timedelta(seconds=delay)}
                    await db.execute(
                        update(table).where(mine).values({**released, "embedding_error": error, **values}),
                        {"chunk_id": chunk.id},
                    )
            if error is None:
                # Swapped in the same transaction, so no reader sees chunks "completed" but not
                # yet searchable; checked again after the commit in case another worker was
                # finishing the same content's other chunks at the same time.
                await self._swap_ready(db, content_ids)
            await db.commit()
            if error is None:
                await _lock_contents(db, content_ids)
                await self._swap_ready(db, content_ids)
                await db.commit()

    async def _swap_ready(self, db: AsyncSession, content_ids: set[str]) -> None:
        """Make each content's newest chunk set searchable once all of it is embedded (the
        caller commits)."""
        contents = (
            await db.execute(
                select(MemoryContent.id, MemoryContent.version, MemoryContent.memory_id).where(
                    MemoryContent.id.in_(content_ids)
                )
            )
        ).all()
        newest = {cid: version for cid, version, _ in contents}
        rows = (
            await db.execute(
                select(
                    MemoryChunk.content_id, MemoryChunk.version, MemoryChunk.embedding_status, MemoryChunk.active
                ).where(MemoryChunk.content_id.in_(content_ids))
            )
        ).all()
        blocked = {
            cid
            for cid, version, status, active in rows
            if version == newest.get(cid) and (status != "completed" or active)
        }
        with_chunks = {r[0] for r in rows}
        ready = [cid for cid in newest if cid in with_chunks and cid not in blocked]
        if not ready:
            return
        # One transaction: the new chunk sets answer from now on, the old ones are gone. One
        # statement per batch, not per content (executemany), and a delete only where there
        # are older versions to delete.
        table = cast(Table, MemoryChunk.__table__)
        this = table.c.content_id == bindparam("cid")
        await db.execute(
            update(table).where(this, table.c.version == bindparam("v")).values(active=True),
            [{"cid": cid, "v": newest[cid]} for cid in ready],
        )
        older = {cid for cid, version, _, _ in rows if cid in newest and version != newest[cid]}
        stale = [{"cid": cid, "v": newest[cid]} for cid in ready if cid in older]
        if stale:
            await db.execute(delete(table).where(this, table.c.version != bindparam("v")), stale)
        for memory_id in {m for cid, _, m in contents if cid in ready}:
            await bump(db, memory_id)


async def _lock_contents(db: AsyncSession, content_ids: set[str]) -> None:
    """Take the contents' row locks before touching any of their chunks (PostgreSQL).

    A content's replacement (``memory/store.py``) locks the content row, then deletes the
    chunks of versions that never became active, the very rows this worker updates. Locking
    in the same order — memory, then contents by id, then chunks — means the two wait for
    each other instead of deadlocking. The memory is held in key-share mode: it only keeps a
    concurrent delete of the memory from cascading into rows this transaction holds.
    """
    if not content_ids or db.get_bind().dialect.name != "postgresql":
        return  # SQLite has one writer at a time: nothing to order
    memory_ids = select(MemoryContent.memory_id).where(MemoryContent.id.in_(content_ids))
    memories = select(Memory.id).where(Memory.id.in_(memory_ids)).order_by(Memory.id)
    await db.execute(memories.with_for_update(read=True, key_share=True))
    await db.execute(
        select(MemoryContent.id)
        .where(MemoryContent.id.in_(content_ids))
        .order_by(MemoryContent.id)
        .with_for_update(key_share=True)
    )
