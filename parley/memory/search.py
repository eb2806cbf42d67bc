"""Search a memory: dense (embeddings), lexical (BM25) or hybrid (both), with filters.

Every mode applies the same content filter (content_type, content_keywords, attrs) and skips
disabled contents. ``similarity`` in a result is calibrated the same way in every mode (see
scoring.py): at 0.5 or above, the passage answers the query.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import cast, func, or_, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from parley.memory import scoring
from parley.memory.background import QUESTIONS
from parley.memory.bm25 import Lexical
from parley.memory.filters import bounded, content_conditions
from parley.memory.index import IndexCache, LoadedIndex
from parley.memory.terms import terms
from parley.storage.models import Memory, MemoryChunk, MemoryContent, iso

Mode = Literal["dense", "hybrid", "lexical"]
MODES: tuple[Mode, ...] = ("dense", "hybrid", "lexical")
PG_DENSE_CANDIDATES = 20  # at least this many nearest chunks from pgvector for hybrid fusion (two per result)
# At least this many best lexical chunks whose cosines pgvector adds (three per result asked
# for otherwise): when lexical evidence decides, the results come from the top of its list.
PG_LEXICAL_CANDIDATES = 20
MASKS = 64  # filter masks kept per loaded index


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
        self._shifts: dict[str, np.ndarray] = {}
        self._shift_lock = asyncio.Lock()
        self._pg_sums: dict[tuple[str, int], tuple[int, np.ndarray, int]] = {}

    def profile(self, memory: Memory) -> scoring.DenseProfile:
        return scoring.dense_profile(memory.embedding_model, self.calibrations)

    async def _shift(self, model: str) -> np.ndarray:
        """The direction all questions share, for this model: the mean of the background questions."""
        if model not in self._shifts:
            async with self._shift_lock:
                if model not in self._shifts:
                    result = await self.router.embed(model, list(QUESTIONS))
                    self._shifts[model] = scoring.background_direction(np.asarray(result.vectors))
        return self._shifts[model]

    async def query_vectors(self, memory: Memory, queries: list[str]) -> np.ndarray:
        """Unit query vectors as dense search compares them (shifted for the packaged model)."""
        result = await self.router.embed(memory.embedding_model, queries)
        shift = await self._shift(memory.embedding_model) if self.profile(memory).shift else None
        return scoring.shifted(np.asarray(result.vectors), shift)

    async def query_vector(self, memory: Memory, query: str) -> np.ndarray:
        return (await self.query_vectors(memory, [query]))[0]

    async def _allowed(
        self, db: AsyncSession, memory: Memory, index: LoadedIndex, stamp: Any, content_filter: dict[str, Any] | None
    ) -> np.ndarray:
        """A mask over the index: enabled contents that pass the filter (cached per contents stamp)."""
        conditions = content_conditions(content_filter, "postgresql" if self.postgres else "sqlite")
        key = (stamp, json.dumps(content_filter, sort_keys=True, default=str))
        mask = index.masks.get(key)
        if mask is None:
            mask = await self._mask(db, memory, index, conditions)
            if len(index.masks) >= MASKS:
                index.masks.pop(next(iter(index.masks)))
            index.masks[key] = mask
        return mask

    async def _mask(self, db: AsyncSession, memory: Memory, index: LoadedIndex, conditions: list[Any]) -> np.ndarray:
        if conditions:
            async with bounded(db, conditions):
                ids = await db.scalars(
                    select(MemoryContent.id).where(
                        MemoryContent.memory_id == memory.id, MemoryContent.status == "enabled", *conditions
                    )
                )
                return index.mask_for(list(ids.all()), keep=True)
        # "status != enabled" as two ranges, so the (memory_id, status) index finds the few
        # disabled contents instead of walking every content of the memory.
        other = or_(MemoryContent.status < "enabled", MemoryContent.status > "enabled")
        rows = await db.scalars(select(MemoryContent.id).where(MemoryContent.memory_id == memory.id, other))
        off = list(rows.all())
        if not off:
            return np.ones(len(index), dtype=bool)
        return index.mask_for(off, keep=False)

    async def _pg_cosines(
        self,
        db: AsyncSession,
        memory: Memory,
        q: np.ndarray,
        content_filter: dict[str, Any] | None,
        limit: int,
        also: list[str] | None = None,
    ) -> dict[str, float]:
        """pgvector: the ``limit`` nearest chunks (HNSW, filters in the same query, iterative
        scans), and the cosines of the chunks ``also`` names (already known to pass the filter),
        in one round trip."""
        dims = len(q)
        distance = cast(MemoryChunk.embedding, Vector(dims)).cosine_distance(q.tolist())
        conditions = content_conditions(content_filter, "postgresql")
        searchable = (MemoryChunk.memory_id == memory.id, MemoryChunk.active.is_(True), MemoryChunk.dims == dims)
        nearest = (
            select(MemoryChunk.id.label("id"), distance.label("distance"))
            .join(MemoryContent, MemoryContent.id == MemoryChunk.content_id)
            .where(*searchable, MemoryContent.status == "enabled", *conditions)
            .order_by(distance)
            .limit(limit)
        )
        query: Any = nearest
        if also:
            inner = nearest.subquery()
            given = select(MemoryChunk.id, distance).where(*searchable, MemoryChunk.id.in_(also))
            query = union_all(select(inner.c.id, inner.c.distance), given)
        # Settings local to this transaction, in one statement (SET LOCAL would take three).
        await db.execute(
            text(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                " set_config('hnsw.ef_search', '100', true), set_config('statement_timeout', '10s', true)"
            )
        )
        async with bounded(db, conditions):
            rows = (await db.execute(query)).all()
        return {r[0]: 1.0 - float(r[1]) for r in rows}

    async def _pg_mean(self, db: AsyncSession, memory: Memory, q: np.ndarray, version: int | None = None) -> float:
        """The query's shrunk mean cosine over the memory, from the sum of its vectors (cached per version)."""
        if version is None:
            version = await db.scalar(select(Memory.index_version).where(Memory.id == memory.id)) or 0
        key = (memory.id, len(q))
        cached = self._pg_sums.get(key)
        if cached is None or cached[0] != version:
            vector = cast(MemoryChunk.embedding, Vector(len(q)))
            row = (
                await db.execute(
                    select(func.sum(vector), func.count()).where(
                        MemoryChunk.memory_id == memory.id, MemoryChunk.active.is_(True), MemoryChunk.dims == len(q)
                    )
                )
            ).one()
            total = np.zeros(len(q), dtype=np.float32) if row[0] is None else np.asarray(row[0], dtype=np.float32)
            cached = (version, total, int(row[1]))
            self._pg_sums[key] = cached
        return scoring.shrunk_mean(float(q @ cached[1]), cached[2])

    def _lexical(self, index: LoadedIndex, query: str) -> Lexical:
        return index.lexical.match(terms(query))

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
        profile = self.profile(memory)
        if self.postgres and mode == "dense":  # pgvector alone answers: no in-process index needed
            q = await self.query_vector(memory, query)
            found = await self._pg_cosines(db, memory, q, content_filter, limit)
            mean = await self._pg_mean(db, memory, q) if profile.centered and found else 0.0
            ids = list(found)
            sims = scoring.sigmoid(scoring.dense_logit(profile, np.array([found[i] for i in ids]), mean))
            return await self._best(db, dict(zip(ids, sims.tolist(), strict=True)), limit, min_similarity)
        index, stamp = await self.indexes.load(db, memory)
        if not len(index):
            return []
        mask = await self._allowed(db, memory, index, stamp, content_filter)
        lexical = await asyncio.to_thread(self._lexical, index, query) if mode != "dense" else None
        if mode == "lexical":
            assert lexical is not None
            mean_l = scoring.shrunk_mean(lexical.total, len(index))
            sims = scoring.sigmoid(scoring.lexical_logit(lexical.score, mean_l))
        else:
            q = await self.query_vector(memory, query)
            if self.postgres:
                assert lexical is not None
                scores = await self._pg_hybrid(db, memory, index, mask, lexical, q, content_filter, limit)
                return await self._best(db, scores, limit, min_similarity)
            same = index.vectors is not None and index.vectors.shape[1] == len(q)
            mean = scoring.shrunk_mean(float(q @ index.vector_sum), len(index)) if same else 0.0
            at, cos = self._dense_candidates(profile, index, mask, lexical, q, mean, limit, same)
            dense = scoring.dense_logit(profile, cos, mean)
            logit = dense if lexical is None else self._fuse(index, mask, lexical, dense, at)
            sims = scoring.sigmoid(logit)
            best = {index.chunk_ids[i]: float(v) for i, v in zip(at, sims, strict=True)}
            return await self._best(db, best, limit, min_similarity)
        return await self._best(db, self._top(index, np.where(mask, sims, -1.0), limit), limit, min_similarity)

    @staticmethod
    def _dense_candidates(
        profile: scoring.DenseProfile,
        index: LoadedIndex,
        mask: np.ndarray,
        lexical: Lexical | None,
        q: np.ndarray,
        mean: float,
        limit: int,
        same: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The positions of the best-ranked allowed chunks and their exact cosines.

        Every chunk is ranked cheaply (float32 log-odds, no logistic) and only ``limit`` and a
        margin are scored exactly. On a large memory the ranking starts from coarse.py's int8
        cosines: chunks whose best possible log-odds (the cosine's error bound applied) fall
        below the ``limit``-th best worst possible one cannot be among the results; the rest
        (a few dozen to a few hundred) get exact cosines first."""
        mix = Searcher._mix(mask, lexical)
        scan = index.coarse is not None and same and isinstance(profile.calibration, scoring.Calibration)
        if scan and profile.calibration.slope > 0 and limit < mask.sum():  # type: ignore[union-attr]
            assert index.coarse is not None
            approx, bound = index.coarse.scan(q)
            low = Searcher._rank(profile, mix, approx - bound, mean)
            high = Searcher._rank(profile, mix, approx + bound, mean)
            allowed = low[mask]
            floor = float(np.partition(allowed, len(allowed) - limit)[len(allowed) - limit])
            # float32 rounding can put ``high`` a hair under ``low`` where lexical evidence alone
            # decides: a little slack keeps such chunks (more candidates is always safe).
            within = np.flatnonzero(mask & (high >= floor - 1e-3 * (1 + abs(floor))))
            if len(within) * 4 < len(index):
                assert index.vectors is not None
                cos = index.vectors[within] @ q
                chosen = Searcher._candidates(Searcher._rank(profile, mix, cos, mean, within), limit)
                return within[chosen], cos[chosen]
        cos = index.vectors @ q if same and index.vectors is not None else np.zeros(len(index), dtype=np.float32)
        at = Searcher._candidates(np.where(mask, Searcher._rank(profile, mix, cos, mean), -np.inf), limit)
        return at, cos[at]

    @staticmethod
    def _candidates(rank: np.ndarray, limit: int) -> np.ndarray:
        """Positions of the best-ranked chunks (-inf: not allowed): ``limit`` and a margin, so a
        near-tie that float32 ranking orders differently from the exact scores cannot push a
        result out."""
        k = min(limit * 2 + 10, len(rank))
        top = np.argpartition(-rank, k - 1)[:k] if k < len(rank) else np.arange(len(rank))
        return top[np.isfinite(rank[top])]

    @staticmethod
    def _mix(mask: np.ndarray, lexical: Lexical | None) -> tuple[np.ndarray, np.ndarray] | None:
        """``_fuse`` as ``dense × keep + add`` per chunk, in float32 (ranking only): ``keep`` is
        1 − ω, ``add`` ω × the lexical log-odds. None in dense mode."""
        if lexical is None:
            return None
        allowed = lexical.score[mask]
        best = float(allowed.max()) if len(allowed) else 0.0
        weight = lexical.coverage * np.float32(scoring.gate(best))
        add = scoring.lexical_logit32(lexical.score, scoring.shrunk_mean(lexical.total, len(mask)))
        add *= weight
        return np.float32(1) - weight, add

    @staticmethod
    def _rank(
        profile: scoring.DenseProfile,
        mix: tuple[np.ndarray, np.ndarray] | None,
        cos: np.ndarray,
        mean: float,
        at: np.ndarray | None = None,
    ) -> np.ndarray:
        """Dense or hybrid log-odds (see ``_mix``) of chunks with cosines ``cos``: every chunk, or
        those at ``at``; in float32, for ranking only."""
        rank = scoring.rank_dense(profile, cos, mean)
        if mix is None:
            return rank
        keep, add = mix if at is None else (mix[0][at], mix[1][at])
        rank *= keep
        rank += add
        return rank

    @staticmethod
    def _fuse(index: LoadedIndex, mask: np.ndarray, lexical: Lexical, dense: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Hybrid log-odds of the chunks at positions ``at``, given their dense log-odds."""
        allowed = lexical.score[mask]
        best = float(allowed.max()) if len(allowed) else 0.0
        mean_l = scoring.shrunk_mean(lexical.total, len(index))
        lex = scoring.lexical_logit(lexical.score[at], mean_l)
        return scoring.hybrid_logit(dense, lex, lexical.coverage[at], best)

    async def _pg_hybrid(
        self,
        db: AsyncSession,
        memory: Memory,
        index: LoadedIndex,
        mask: np.ndarray,
        lexical: Lexical,
        q: np.ndarray,
        content_filter: dict[str, Any] | None,
        limit: int,
    ) -> dict[str, float]:
        """Lexical evidence from the in-process index, cosines from pgvector, for the union of
        pgvector's nearest chunks and (when lexical evidence counts) the best lexical ones."""
        profile = self.profile(memory)
        allowed = np.where(mask, lexical.score, 0.0)
        also: list[str] = []
        if scoring.gate(float(allowed.max()) if len(allowed) else 0.0) > 0:
            n = min(max(limit * 3, PG_LEXICAL_CANDIDATES), len(allowed))
            top = np.argpartition(-allowed, n - 1)[:n]  # the n best, unordered: no full sort
            also = [index.chunk_ids[i] for i in top if allowed[i] > 0]
        cos = await self._pg_cosines(db, memory, q, content_filter, max(limit * 2, PG_DENSE_CANDIDATES), also)
        if not cos:
            return {}
        position = index.positions()
        ids = [cid for cid in cos if cid in position]
        at = np.array([position[cid] for cid in ids], dtype=np.int64)
        mean = await self._pg_mean(db, memory, q, index.version) if profile.centered else 0.0
        dense = scoring.dense_logit(profile, np.array([cos[cid] for cid in ids]), mean)
        sims = scoring.sigmoid(self._fuse(index, mask, lexical, dense, at))
        return dict(zip(ids, sims.tolist(), strict=True))

    def _top(self, index: LoadedIndex, sims: np.ndarray, limit: int) -> dict[str, float]:
        k = min(limit, len(sims))
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        return {index.chunk_ids[i]: float(sims[i]) for i in top if sims[i] >= 0}

    async def _best(self, db: AsyncSession, scores: dict[str, float], limit: int, min_similarity: float) -> list[Hit]:
        best = sorted(((k, v) for k, v in scores.items() if v >= min_similarity), key=lambda kv: -kv[1])[:limit]
        return await self._hits(db, best)

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
