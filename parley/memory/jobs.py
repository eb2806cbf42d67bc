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
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.memory.store import bump
from parley.memory.terms import terms
from parley.storage.models import Memory, MemoryChunk, MemoryContent, now

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
        while True:
            try:
                worked = await self.run_once()
            except Exception:  # noqa: BLE001 - the worker must outlive any one bad batch
                log.exception("embedding batch failed")
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
            pick = select(MemoryChunk.id).where(due).order_by(MemoryChunk.created_at).limit(BATCH)
            if db.bind.dialect.name == "postgresql":
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
            rows = await db.scalars(
                select(MemoryChunk).where(
                    MemoryChunk.lease_token == self.token, MemoryChunk.embedding_status == "processing"
                )
            )
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
            result = await self.router.embed(memory.embedding_model, texts)
            bags = await asyncio.to_thread(lambda: [" ".join(terms(t)) for t in texts])
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then reported per chunk
            log.warning("embedding failed", extra={"fields": {"memory": memory_id, "error": str(exc)[:300]}})
            await self._finish(group, None, None, f"{type(exc).__name__}: {exc}"[:1000])
            return
        await self._finish(group, result.vectors, bags, None)

    async def _finish(
        self, group: list[MemoryChunk], vectors: list[list[float]] | None, bags: list[str] | None, error: str | None
    ) -> None:
        async with self.sessions() as db:
            for i, chunk in enumerate(group):
                mine = and_(MemoryChunk.id == chunk.id, MemoryChunk.lease_token == self.token)
                if error is None:
                    values: dict[str, Any] = {
                        "embedding_status": "completed",
                        "embedding": vectors[i],  # type: ignore[index]
                        "dims": len(vectors[i]),
                        "terms": bags[i],  # type: ignore[index]
                        "embedding_error": None,
                    }
                elif chunk.attempts >= MAX_ATTEMPTS:
                    values = {"embedding_status": "error", "embedding_error": error}
                else:
                    values = {
                        "embedding_status": "pending",
                        "embedding_error": error,
                        "not_before": now() + timedelta(seconds=2**chunk.attempts),
                    }
                await db.execute(update(MemoryChunk).where(mine).values(lease_token=None, locked_until=None, **values))
            await db.commit()
            if error is None:
                for content_id in {c.content_id for c in group}:
                    await self._swap_if_ready(db, content_id)

    async def _swap_if_ready(self, db: AsyncSession, content_id: str) -> None:
        content = await db.get(MemoryContent, content_id)
        if content is None:
            return
        newest = and_(MemoryChunk.content_id == content_id, MemoryChunk.version == content.version)
        unfinished = await db.scalar(select(func.count()).where(newest, MemoryChunk.embedding_status != "completed"))
        already = await db.scalar(select(func.count()).where(newest, MemoryChunk.active.is_(True)))
        if unfinished or already:
            return
        # One transaction: the new chunk set answers from now on, the old one is gone.
        await db.execute(update(MemoryChunk).where(newest).values(active=True))
        await db.execute(
            delete(MemoryChunk).where(MemoryChunk.content_id == content_id, MemoryChunk.version != content.version)
        )
        await bump(db, content.memory_id)
        await db.commit()
