"""Search a memory: dense (embeddings), lexical (BM25) or hybrid (both), with filters.

Every mode applies the same content filter (content_type, content_keywords, attrs) and skips
disabled contents. ``similarity`` in a result is calibrated the same way in every mode (see
scoring.py): at 0.5 or above, the passage answers the query.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import String, any_, bindparam, cast, func, or_, select, true, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

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

# What a hit needs of its chunk and its content: not the chunk's vector nor its BM25 terms
# (never shown, and a vector costs more to decode than the rest of the row), nor the content's
# text, which may be long; content search fetches that for its results alone.
_HIT_COLUMNS = (
    MemoryChunk.id,
    MemoryChunk.memory_id,
    MemoryChunk.content_id,
    MemoryChunk.version,
    MemoryChunk.chunk_index,
    MemoryChunk.content,
    MemoryChunk.token_count,
    MemoryChunk.created_at,
    MemoryContent.content_type.label("content_type"),
    MemoryContent.key.label("content_key"),
    MemoryContent.attrs.label("content_attrs"),
    MemoryContent.status.label("content_status"),
    MemoryContent.version.label("content_version"),
    MemoryContent.created_at.label("content_created_at"),
    MemoryContent.updated_at.label("content_updated_at"),
)


def _hit_parts(row: Sequence[Any], at: int = 0) -> tuple[MemoryChunk, MemoryContent]:
    """The chunk and content of a row holding ``_HIT_COLUMNS`` from position ``at`` (objects
    outside any session: a search's results are read, never changed)."""
    cid, memory_id, content_id, version, index, text, tokens, created = row[at : at + 8]
    ctype, key, attrs, status, cversion, ccreated, cupdated = row[at + 8 : at + 15]
    chunk = MemoryChunk(
        id=cid,
        memory_id=memory_id,
        content_id=content_id,
        version=version,
        chunk_index=index,
        content=text,
        token_count=tokens,
        created_at=created,
    )
    content = MemoryContent(
        id=content_id,
        memory_id=memory_id,
        content_type=ctype,
        key=key,
        attrs=attrs,
        status=status,
        version=cversion,
        created_at=ccreated,
        updated_at=cupdated,
    )
    return chunk, content


@dataclass
class _Found:
    """What one PostgreSQL search statement returned: the memory's index version and contents
    stamp as the statement saw them, and each candidate chunk's cosine and hit row."""

    version: int
    stamp: Any
    cosines: dict[str, float]
    rows: dict[str, Sequence[Any]]


@dataclass
class Hit:
    chunk: MemoryChunk
    content: MemoryContent  # its ``content`` (the text) is loaded by search_contents only
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
        self._pg_stamps: dict[str, Any] = {}  # memory id → the contents stamp its last search saw
        self._pg_statements: dict[int, Any] = {}  # dims → the unfiltered search statement

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
        vector: np.ndarray = (await self.query_vectors(memory, [query]))[0]
        return vector

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

    async def _read(self, db: AsyncSession, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """The rows of one read-only statement: in the caller's transaction when one is open, else
        on a pooled connection in autocommit, so that a search made of one statement opens no
        transaction around it (BEGIN and ROLLBACK would be two round trips more than the query)."""
        engine = db.bind
        if not self.postgres or db.in_transaction() or not isinstance(engine, AsyncEngine):
            return list((await db.execute(statement, params)).all())
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            return list((await conn.execute(statement, params)).all())

    def _pg_statement(self, dims: int, conditions: list[Any]) -> Any:
        """One statement for a whole search: the memory's index version and contents stamp, the
        ``k`` nearest allowed chunks (HNSW with iterative scans, filters in the same query; the
        scan parameters are set once per connection, see storage/db.py), the cosines of the
        chunks ``also`` names (already known to pass the filter), and each of those chunks'
        hit columns. The state row comes back even when no chunk does."""
        if not conditions and dims in self._pg_statements:
            return self._pg_statements[dims]
        distance = cast(MemoryChunk.embedding, Vector(dims)).cosine_distance(bindparam("q", type_=Vector(dims)))
        searchable = (MemoryChunk.memory_id == bindparam("mid"), MemoryChunk.active.is_(True), MemoryChunk.dims == dims)
        nearest = (
            select(MemoryChunk.id.label("id"), distance.label("distance"))
            .join(MemoryContent, MemoryContent.id == MemoryChunk.content_id)
            .where(*searchable, MemoryContent.status == "enabled", *conditions)
            .order_by(distance)
            .limit(bindparam("k"))
            .subquery("nearest")
        )
        given = select(MemoryChunk.id.label("id"), distance.label("distance")).where(
            *searchable, MemoryChunk.id == any_(bindparam("also", type_=ARRAY(String)))
        )
        found = union_all(select(nearest.c.id, nearest.c.distance), given).subquery("found")
        hits = (
            select(found.c.distance, *_HIT_COLUMNS)
            .join_from(found, MemoryChunk, MemoryChunk.id == found.c.id)
            .join(MemoryContent, MemoryContent.id == MemoryChunk.content_id)
            .subquery("hits")
        )
        state = select(Memory.index_version, Memory.updated_at).where(Memory.id == bindparam("mid")).subquery("state")
        statement = select(state.c.index_version, state.c.updated_at, *hits.c).select_from(
            state.outerjoin(hits, true())
        )
        if not conditions:
            self._pg_statements[dims] = statement
        return statement

    async def _pg_find(
        self,
        db: AsyncSession,
        memory: Memory,
        q: np.ndarray,
        conditions: list[Any],
        limit: int,
        also: list[str],
    ) -> _Found | None:
        """One round trip (see ``_pg_statement``); None when the memory is gone."""
        statement = self._pg_statement(len(q), conditions)
        params = {"mid": memory.id, "q": q, "k": limit, "also": also}
        if conditions:
            async with bounded(db, conditions):
                rows = list((await db.execute(statement, params)).all())
        else:
            rows = await self._read(db, statement, params)
        if not rows:
            return None
        cosines: dict[str, float] = {}
        hits: dict[str, Sequence[Any]] = {}
        for r in rows:
            if r[3] is not None:  # the chunk id: None on the state row alone (no candidates)
                cosines[r[3]] = 1.0 - float(r[2])
                hits[r[3]] = r
        return _Found(rows[0][0] or 0, rows[0][1], cosines, hits)

    async def _pg_mean(self, db: AsyncSession, memory: Memory, q: np.ndarray, version: int) -> float:
        """The query's shrunk mean cosine over the memory, from the sum of its vectors (cached per version)."""
        key = (memory.id, len(q))
        cached = self._pg_sums.get(key)
        if cached is None or cached[0] != version:
            vector = cast(MemoryChunk.embedding, Vector(len(q)))
            row = (
                await self._read(
                    db,
                    select(func.sum(vector), func.count()).where(
                        MemoryChunk.memory_id == memory.id, MemoryChunk.active.is_(True), MemoryChunk.dims == len(q)
                    ),
                )
            )[0]
            total = np.zeros(len(q), dtype=np.float32) if row[0] is None else np.asarray(row[0], dtype=np.float32)
            cached = (version, total, int(row[1]))
            self._pg_sums[key] = cached
        return scoring.shrunk_mean(float(q @ cached[1]), cached[2])

    def _lexical(self, index: LoadedIndex, query: str) -> Lexical:
        return index.lexical.match(terms(query))

    async def _embedded_and_matched(self, memory: Memory, index: LoadedIndex, query: str) -> tuple[np.ndarray, Lexical]:
        """The query vector and the query's lexical evidence, side by side: both run in worker
        threads (the embedder and numpy release the GIL), so on two cores the search waits for
        the slower of the two rather than for both."""
        q, lexical = await asyncio.gather(
            self.query_vector(memory, query), asyncio.to_thread(self._lexical, index, query)
        )
        return q, lexical

    @staticmethod
    def _best_lexical(lexical: Lexical, mask: np.ndarray) -> float:
        """The best lexical score among the chunks ``mask`` allows (0 when none is)."""
        if not len(mask):
            return 0.0
        if mask.all():  # the usual case (no filter, nothing disabled): no copy
            return float(lexical.score.max())
        allowed = lexical.score[mask]
        return float(allowed.max()) if len(allowed) else 0.0

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
        if self.postgres and mode != "lexical":
            return await self._pg_search(db, memory, query, limit, min_similarity, content_filter, mode)
        index, stamp = await self.indexes.load(db, memory)
        if not len(index):
            return []
        mask = await self._allowed(db, memory, index, stamp, content_filter)
        lexical: Lexical | None = None
        if mode == "lexical":
            lexical = await asyncio.to_thread(self._lexical, index, query)
            mean_l = scoring.shrunk_mean(lexical.total, len(index))
            sims = scoring.sigmoid(scoring.lexical_logit(lexical.score, mean_l))
        else:
            if mode == "hybrid":  # the query's terms are matched while it is embedded
                q, lexical = await self._embedded_and_matched(memory, index, query)
            else:
                q = await self.query_vector(memory, query)
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
        finite: np.ndarray = top[np.isfinite(rank[top])]
        return finite

    @staticmethod
    def _mix(mask: np.ndarray, lexical: Lexical | None) -> tuple[np.ndarray, np.ndarray] | None:
        """``_fuse`` as ``dense × keep + add`` per chunk, in float32 (ranking only): ``keep`` is
        1 − ω, ``add`` ω × the lexical log-odds. None in dense mode."""
        if lexical is None:
            return None
        weight = lexical.coverage * np.float32(scoring.gate(Searcher._best_lexical(lexical, mask)))
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
        best = Searcher._best_lexical(lexical, mask)
        mean_l = scoring.shrunk_mean(lexical.total, len(index))
        lex = scoring.lexical_logit(lexical.score[at], mean_l)
        return scoring.hybrid_logit(dense, lex, lexical.coverage[at], best)

    async def _pg_search(
        self,
        db: AsyncSession,
        memory: Memory,
        query: str,
        limit: int,
        min_similarity: float,
        content_filter: dict[str, Any] | None,
        mode: Mode,
    ) -> list[Hit]:
        """Dense or hybrid search on PostgreSQL, in one statement (``_pg_statement``).

        Dense: pgvector's nearest chunks are the results. Hybrid: lexical evidence from the
        in-process index, cosines from pgvector, for the union of pgvector's nearest chunks and
        (when lexical evidence counts) the best lexical ones. The index loaded last is used
        without asking first whether it is current: the statement itself returns the memory's
        index version and contents stamp, and only when either moved is the search run again
        on a reloaded index."""
        profile = self.profile(memory)
        conditions = content_conditions(content_filter, "postgresql")
        if mode == "dense":
            q = await self.query_vector(memory, query)
            found = await self._pg_find(db, memory, q, conditions, limit, [])
            if found is None or not found.cosines:
                return []
            mean = await self._pg_mean(db, memory, q, found.version) if profile.centered else 0.0
            ids = list(found.cosines)
            sims = scoring.sigmoid(scoring.dense_logit(profile, np.array([found.cosines[i] for i in ids]), mean))
            return self._pg_hits(found, dict(zip(ids, sims.tolist(), strict=True)), limit, min_similarity)
        index, stamp = self.indexes.peek(memory.id), self._pg_stamps.get(memory.id)
        if index is None or stamp is None or not len(index):
            index, stamp = await self.indexes.load(db, memory)
        run = await self._pg_hybrid(db, memory, index, stamp, query, None, conditions, content_filter, limit)
        if run is not None and (run[0].version != index.version or run[0].stamp != stamp):
            index, stamp = await self.indexes.load(db, memory)  # it changed: the search runs again
            run = await self._pg_hybrid(db, memory, index, stamp, query, run[3], conditions, content_filter, limit)
        if run is None or not run[0].cosines:
            return []
        found, mask, lexical, q = run
        position = index.positions()
        ids = [cid for cid in found.cosines if cid in position]
        at = np.array([position[cid] for cid in ids], dtype=np.int64)
        mean = await self._pg_mean(db, memory, q, found.version) if profile.centered else 0.0
        dense = scoring.dense_logit(profile, np.array([found.cosines[cid] for cid in ids]), mean)
        sims = scoring.sigmoid(self._fuse(index, mask, lexical, dense, at))
        return self._pg_hits(found, dict(zip(ids, sims.tolist(), strict=True)), limit, min_similarity)

    async def _pg_hybrid(
        self,
        db: AsyncSession,
        memory: Memory,
        index: LoadedIndex,
        stamp: Any,
        query: str,
        q: np.ndarray | None,
        conditions: list[Any],
        content_filter: dict[str, Any] | None,
        limit: int,
    ) -> tuple[_Found, np.ndarray, Lexical, np.ndarray] | None:
        """One hybrid search statement over ``index`` as loaded at ``stamp``: what it found, the
        filter mask, the lexical evidence and the query vector (embedded here unless given);
        None when the index is empty or the memory gone."""
        if not len(index):
            return None
        mask = await self._allowed(db, memory, index, stamp, content_filter)
        if q is None:
            q, lexical = await self._embedded_and_matched(memory, index, query)
        else:
            lexical = await asyncio.to_thread(self._lexical, index, query)
        allowed = lexical.score if mask.all() else np.where(mask, lexical.score, 0.0)
        also: list[str] = []
        if scoring.gate(self._best_lexical(lexical, mask)) > 0:
            n = min(max(limit * 3, PG_LEXICAL_CANDIDATES), len(allowed))
            top = np.argpartition(-allowed, n - 1)[:n]  # the n best, unordered: no full sort
            also = [index.chunk_ids[i] for i in top if allowed[i] > 0]
        found = await self._pg_find(db, memory, q, conditions, max(limit * 2, PG_DENSE_CANDIDATES), also)
        if found is None:
            return None
        self._pg_stamps[memory.id] = found.stamp
        return found, mask, lexical, q

    @staticmethod
    def _pg_hits(found: _Found, scores: dict[str, float], limit: int, min_similarity: float) -> list[Hit]:
        best = sorted(((k, v) for k, v in scores.items() if v >= min_similarity), key=lambda kv: -kv[1])[:limit]
        return [Hit(*_hit_parts(found.rows[cid], 3), sim) for cid, sim in best]

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
        rows = await self._read(
            db,
            select(*_HIT_COLUMNS)
            .join(MemoryContent, MemoryContent.id == MemoryChunk.content_id)
            .where(MemoryChunk.id.in_([cid for cid, _ in best])),
        )
        found = {r[0]: _hit_parts(r) for r in rows}
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
        chosen = list(best.values())[:limit]
        if chosen:
            ids = [hit.content.id for hit in chosen]
            texts = dict(
                (r[0], r[1])
                for r in await self._read(
                    db, select(MemoryContent.id, MemoryContent.content).where(MemoryContent.id.in_(ids))
                )
            )
            chosen = [hit for hit in chosen if hit.content.id in texts]  # a content deleted meanwhile is gone
            for hit in chosen:
                hit.content.content = texts[hit.content.id]
        return chosen
