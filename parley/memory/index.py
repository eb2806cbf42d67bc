"""In-process indexes of a memory's searchable chunks, reloaded when the memory changes.

Every backend keeps its BM25 index here (terms are stored per chunk, so loading needs no
re-segmentation). On SQLite the vectors live here too, as one normalized float32 matrix that a
query multiplies in a few milliseconds even at 100k chunks; on PostgreSQL pgvector answers
vector queries itself. Either way the index knows the sum of the memory's vectors, so a
query's mean cosine over the memory is one dot product (scoring.py centers on it).
``memories.index_version`` says when a loaded index is stale.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.memory.bm25 import LexicalIndex
from parley.memory.coarse import Coarse
from parley.storage.models import Memory, MemoryChunk


@dataclass
class LoadedIndex:
    version: int
    chunk_ids: np.ndarray  # object array of str
    content_codes: np.ndarray  # per chunk, its content's position in ``contents``
    contents: dict[str, int]  # content id → code
    lexical: LexicalIndex
    vectors: np.ndarray | None  # rows L2-normalized; None when the database searches vectors
    vector_sum: np.ndarray | None  # the sum of those rows (SQLite; PostgreSQL asks pgvector)
    coarse: Coarse | None = None  # int8 copies for a first pass over large memories (see coarse.py)
    _positions: dict[str, int] | None = None
    # Which rows a content filter allows, by (contents stamp, filter): chat asks with the same
    # filter every turn, and a JSON filter over 100k contents costs the database ~100 ms.
    masks: dict[tuple[Any, str], np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def positions(self) -> dict[str, int]:
        """Chunk id → row, built once per loaded index (PostgreSQL hybrid maps pgvector's ids back)."""
        if self._positions is None:
            self._positions = {cid: i for i, cid in enumerate(self.chunk_ids)}
        return self._positions

    def mask_for(self, content_ids: list[str], keep: bool) -> np.ndarray:
        """Chunks whose content is (keep=True) or is not (keep=False) among ``content_ids``."""
        chosen = np.zeros(len(self.contents) + 1, dtype=bool)
        for cid in content_ids:
            code = self.contents.get(cid)
            if code is not None:
                chosen[code] = True
        hit: np.ndarray = chosen[self.content_codes]
        return hit if keep else ~hit


class IndexCache:
    def __init__(self, keep_vectors: bool) -> None:
        self.keep_vectors = keep_vectors
        self._entries: dict[str, LoadedIndex] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def forget(self, memory_id: str) -> None:
        self._entries.pop(memory_id, None)

    def peek(self, memory_id: str) -> LoadedIndex | None:
        """The memory's index as last loaded, without asking the database whether it is current
        (the caller checks: see search.py on PostgreSQL)."""
        return self._entries.get(memory_id)

    async def get(self, db: AsyncSession, memory: Memory) -> LoadedIndex:
        return (await self.load(db, memory))[0]

    async def load(self, db: AsyncSession, memory: Memory) -> tuple[LoadedIndex, Any]:
        """The memory's index, and its contents stamp (``memories.updated_at``: any change to a
        content's text, status or attributes moves it; see store.touch)."""
        row = (await db.execute(select(Memory.index_version, Memory.updated_at).where(Memory.id == memory.id))).one()
        return await self._get(db, memory, row[0]), row[1]

    async def _get(self, db: AsyncSession, memory: Memory, version: int | None) -> LoadedIndex:
        entry = self._entries.get(memory.id)
        if entry is not None and entry.version == version:
            return entry
        lock = self._locks.setdefault(memory.id, asyncio.Lock())
        async with lock:
            entry = self._entries.get(memory.id)
            if entry is not None and entry.version == version:
                return entry
            entry = await self._load(db, memory.id, version or 0)
            self._entries[memory.id] = entry
            return entry

    async def _load(self, db: AsyncSession, memory_id: str, version: int) -> LoadedIndex:
        columns = [MemoryChunk.id, MemoryChunk.content_id, MemoryChunk.terms]
        if self.keep_vectors:
            columns.append(MemoryChunk.embedding)
        result = await db.execute(
            select(*columns).where(MemoryChunk.memory_id == memory_id, MemoryChunk.active.is_(True))
        )
        rows = result.all()
        return await asyncio.to_thread(self._build, list(rows), version)

    def _build(self, rows: list[Any], version: int) -> LoadedIndex:
        ids = np.array([r[0] for r in rows], dtype=object)
        contents: dict[str, int] = {}
        codes = np.array([contents.setdefault(r[1], len(contents)) for r in rows], dtype=np.int32)
        lexical = LexicalIndex([r[2] or "" for r in rows])
        vectors = vector_sum = None
        if self.keep_vectors:
            dims = {len(r[3]) for r in rows if r[3] is not None}
            width = dims.pop() if len(dims) == 1 else 0
            vectors = np.zeros((len(rows), width), dtype=np.float32)
            for i, r in enumerate(rows):
                if r[3] is not None and len(r[3]) == width:
                    vectors[i] = r[3]
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.where(norms == 0, 1, norms)
            vector_sum = vectors.sum(axis=0)
        coarse = Coarse.build(vectors) if vectors is not None else None
        return LoadedIndex(version, ids, codes, contents, lexical, vectors, vector_sum, coarse=coarse)
