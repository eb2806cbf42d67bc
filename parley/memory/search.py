"""Search a memory: dense (cosine), lexical (BM25) or hybrid (both, fused), with filters.

Every mode applies the same content filter (content_type, content_keywords, attrs) and skips
disabled contents. ``similarity`` in a result is calibrated (see scoring.py): the cosine's
for dense, the fused score's for hybrid, the normalized BM25's for lexical.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import cast, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.memory import scoring
from parley.memory.filters import bounded, content_conditions
from parley.memory.index import IndexCache, LoadedIndex
from parley.memory.terms import terms
from parley.storage.models import Memory, MemoryChunk, MemoryContent, iso

Mode = Literal["dense", "hybrid", "lexical"]
PG_CANDIDATES = 200  # vector candidates pgvector returns for hybrid fusion


@dataclass
class Hit:
    chunk: MemoryChunk
    content: MemoryContent
    similarity: float

    def chunk_dict(self) -> dict[str, Any]:
        c, t = self.chunk, self.content
        return {
            "id": c.id,
            "content_id": c.content_id,
            "content_type": t.content_type,
            "content_key": t.key,
            "content_attrs": t.attrs,
            "chunk_index": c.chunk_index,
            "content": c.content,
            "token_count": c.token_count,
            "similarity": round(self.similarity, 6),
            "created_at": iso(c.created_at),
        }

    def content_dict(self) -> dict[str, Any]:
        t = self.content
        return {
            "id": t.id,
            "content": t.content,
            "content_type": t.content_type,
            "key": t.key,
            "attrs": t.attrs,
            "similarity": round(self.similarity, 6),
            "created_at": iso(t.created_at),
            "updated_at": iso(t.updated_at),
        }


class Searcher:
    def __init__(self, router: Any, postgres: bool) -> None:
        self.router = router
        self.postgres = postgres
        self.indexes = IndexCache(keep_vectors=not postgres)
        self.calibrations = {name: scoring.Calibration(c.midpoint, c.slope) for name, c in router.calibrations.items()}

    async def _allowed(
        self, db: AsyncSession, memory: Memory, index: LoadedIndex, content_filter: dict[str, Any] | None
    ) -> np.ndarray:
        """A mask over the index: enabled contents that pass the filter."""
        conditions = content_conditions(content_filter, "postgresql" if self.postgres else "sqlite")
        if conditions:
            async with bounded(db, conditions):
                ids = await db.scalars(
                    select(MemoryContent.id).where(
                        MemoryContent.memory_id == memory.id, MemoryContent.status == "enabled", *conditions
                    )
                )
                return index.mask_for(list(ids.all()), keep=True)
        off = list(
            (
                await db.scalars(
                    select(MemoryContent.id).where(
                        MemoryContent.memory_id == memory.id, MemoryContent.status != "enabled"
                    )
                )
            ).all()
        )
        if not off:
            return np.ones(len(index), dtype=bool)
        return index.mask_for(off, keep=False)

    async def _query_vector(self, memory: Memory, query: str) -> np.ndarray:
        result = await self.router.embed(memory.embedding_model, [query])
        q = np.asarray(result.vectors[0], dtype=np.float32)
        return q / (np.linalg.norm(q) or 1.0)

    async def _pg_cosines(
        self,
        db: AsyncSession,
        memory: Memory,
        q: np.ndarray,
        content_filter: dict[str, Any] | None,
        limit: int,
        only: list[str] | None = None,
    ) -> dict[str, float]:
        """pgvector: nearest chunks (HNSW, filters in the same query, iterative scans), or the
        cosine of the given chunks."""
        dims = len(q)
        distance = cast(MemoryChunk.embedding, Vector(dims)).cosine_distance(q.tolist())
        conditions = content_conditions(content_filter, "postgresql")
        query = (
            select(MemoryChunk.id, distance)
            .join(MemoryContent, MemoryContent.id == MemoryChunk.content_id)
            .where(
                MemoryChunk.memory_id == memory.id,
                MemoryChunk.active.is_(True),
                MemoryChunk.dims == dims,
                MemoryContent.status == "enabled",
                *conditions,
            )
        )
        if only is not None:
            query = query.where(MemoryChunk.id.in_(only))
        else:
            query = query.order_by(distance).limit(limit)
        async with db.begin_nested() if db.in_transaction() else db.begin():
            await db.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            await db.execute(text("SET LOCAL hnsw.ef_search = 100"))
            await db.execute(text("SET LOCAL statement_timeout = '10s'"))
            async with bounded(db, conditions):
                rows = (await db.execute(query)).all()
        return {r[0]: 1.0 - float(r[1]) for r in rows}

    async def search(
        self,
        db: AsyncSession,
        memory: Memory,
        query: str,
        *,
        limit: int,
        min_similarity: float,
        content_filter: dict[str, Any] | None = None,
        mode: Mode = "dense",
    ) -> list[Hit]:
        content_conditions(content_filter, "postgresql" if self.postgres else "sqlite")  # a bad filter is a 400 always
        dense_cal = scoring.dense_calibration(memory.embedding_model, self.calibrations)
        if self.postgres and mode == "dense":  # pgvector alone answers: no in-process index needed
            q = await self._query_vector(memory, query)
            found = await self._pg_cosines(db, memory, q, content_filter, limit)
            scores = {cid: float(dense_cal(c)) for cid, c in found.items()}
        else:
            index = await self.indexes.get(db, memory)
            if not len(index):
                return []
            mask = await self._allowed(db, memory, index, content_filter)
            bm25 = index.bm25.normalized(await asyncio.to_thread(terms, query)) if mode != "dense" else None
            q = await self._query_vector(memory, query) if mode != "lexical" else None
            if mode == "lexical":
                sims = scoring.HYBRID(bm25)
            elif self.postgres:
                return await self._hits(
                    db, await self._pg_hybrid(db, memory, index, mask, bm25, q, content_filter, limit, min_similarity)
                )
            else:
                same = index.vectors is not None and index.vectors.shape[1] == len(q)
                cos = index.vectors @ q if same else np.zeros(len(index))
                sims = dense_cal(cos) if mode == "dense" else scoring.HYBRID(scoring.fuse(bm25, cos))
            scores = self._top(index, np.where(mask, sims, -1.0), limit)
        best = sorted(((k, v) for k, v in scores.items() if v >= min_similarity), key=lambda kv: -kv[1])
        return await self._hits(db, best[:limit])

    async def _pg_hybrid(
        self,
        db: AsyncSession,
        memory: Memory,
        index: LoadedIndex,
        mask: np.ndarray,
        bm25: np.ndarray,
        q: np.ndarray,
        content_filter: dict[str, Any] | None,
        limit: int,
        min_similarity: float,
    ) -> list[tuple[str, float]]:
        """BM25 from the in-process index, cosines from pgvector, for the union of both's candidates."""
        lexical = np.where(mask, bm25, -1.0)
        n = min(max(limit * 10, 100), len(lexical))
        top_lex = np.argpartition(-lexical, n - 1)[:n]  # the n best, unordered: no full sort
        candidates = {index.chunk_ids[i]: float(bm25[i]) for i in top_lex if lexical[i] > 0}
        cos = await self._pg_cosines(db, memory, q, content_filter, PG_CANDIDATES)
        missing = [c for c in candidates if c not in cos]
        if missing:
            cos.update(await self._pg_cosines(db, memory, q, content_filter, 0, only=missing))
        position = {cid: i for i, cid in enumerate(index.chunk_ids)}
        scores = {}
        for cid, c in cos.items():
            lex = candidates.get(cid, float(bm25[position[cid]]) if cid in position else 0.0)
            scores[cid] = float(scoring.HYBRID(scoring.fuse(np.float64(lex), np.float64(c))))
        best = sorted(((k, v) for k, v in scores.items() if v >= min_similarity), key=lambda kv: -kv[1])
        return best[:limit]

    def _top(self, index: LoadedIndex, sims: np.ndarray, limit: int) -> dict[str, float]:
        k = min(limit, len(sims))
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        return {index.chunk_ids[i]: float(sims[i]) for i in top if sims[i] >= 0}

    async def _hits(self, db: AsyncSession, best: list[tuple[str, float]]) -> list[Hit]:
        if not best:
            return []
        rows = (
            await db.execute(
                select(MemoryChunk, MemoryContent)
                .join(MemoryContent, MemoryContent.id == MemoryChunk.content_id)
                .where(MemoryChunk.id.in_([cid for cid, _ in best]))
            )
        ).all()
        found = {chunk.id: (chunk, content) for chunk, content in rows}
        return [Hit(*found[cid], sim) for cid, sim in best if cid in found]

    async def search_contents(
        self,
        db: AsyncSession,
        memory: Memory,
        query: str,
        *,
        limit: int,
        min_similarity: float,
        content_filter: dict[str, Any] | None = None,
        mode: Mode = "dense",
    ) -> list[Hit]:
        """Contents ranked by their best chunk."""
        hits = await self.search(
            db,
            memory,
            query,
            limit=min(limit * 5, 500),
            min_similarity=min_similarity,
            content_filter=content_filter,
            mode=mode,
        )
        best: dict[str, Hit] = {}
        for hit in hits:
            if hit.content.id not in best:
                best[hit.content.id] = hit
        return list(best.values())[:limit]
