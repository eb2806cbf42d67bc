"""How far the embedding of some contents has got, whoever is doing it (this process, a server)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.storage.models import MemoryChunk, MemoryContent


@dataclass(frozen=True)
class Progress:
    completed: int
    failed: int
    total: int

    @property
    def finished(self) -> bool:
        return self.completed + self.failed >= self.total


async def embedding_progress(db: AsyncSession, memory_id: str, keys: list[str]) -> Progress:
    """Chunk counts of the newest version of the memory's contents with these keys."""
    counts = {"completed": 0, "error": 0}
    total = 0
    for start in range(0, len(keys), 500):  # bounded IN lists, whatever the number of files
        rows = await db.execute(
            select(MemoryChunk.embedding_status, func.count())
            .join(
                MemoryContent,
                and_(MemoryChunk.content_id == MemoryContent.id, MemoryChunk.version == MemoryContent.version),
            )
            .where(MemoryContent.memory_id == memory_id, MemoryContent.key.in_(keys[start : start + 500]))
            .group_by(MemoryChunk.embedding_status)
        )
        for status, n in rows.all():
            total += n
            if status in counts:
                counts[status] += n
    return Progress(counts["completed"], counts["error"], total)
