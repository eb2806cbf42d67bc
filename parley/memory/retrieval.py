"""Retrieval for chat: find sources for a user's message, and put them before the model.

Each named memory is searched in the settings' ``mode`` (``hybrid`` unless set), results merged
by similarity (calibrated alike in every mode, so merging across memories and modes is fair),
and the best ``limit`` at or above ``min_similarity`` become numbered sources in a system
message that asks the model to cite them as [1], [2]…. The same numbers label the references a
reply returns.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from parley.memory.search import MODES, Hit, Mode, Searcher
from parley.storage.models import Memory

INSTRUCTION = (
    "Answer using the numbered sources below when they are relevant, and cite each source you use "
    "as [n] right after the statement it supports. If the sources do not contain the answer, say so "
    "rather than guessing."
)


async def retrieve(
    db: AsyncSession,
    searcher: Searcher,
    settings: dict[str, Any],
    query: str,
    integration_id: str | None = None,
    mode: Mode | None = None,
) -> list[Hit]:
    """``mode``, when given, overrides ``settings["mode"]``; both default to hybrid."""
    chosen = mode or settings.get("mode") or "hybrid"
    if chosen not in MODES:  # settings are validated when saved; an old row must not break chat
        chosen = "hybrid"
    hits: list[Hit] = []
    limit = int(settings.get("limit") or 5)
    for memory_id in settings.get("collections") or []:
        memory = await db.get(Memory, memory_id)
        if memory is None or memory.status != "enabled":
            continue
        if integration_id is not None and memory.integration_id != integration_id:
            continue  # another tenant's memory is invisible, as if it did not exist
        hits.extend(
            await searcher.search(
                db,
                memory,
                query,
                limit=limit,
                min_similarity=float(settings.get("min_similarity", 0.5)),
                content_filter=settings.get("content_filter"),
                mode=chosen,
            )
        )
    hits.sort(key=lambda h: -h.similarity)
    return hits[:limit]


def sources_message(hits: list[Hit]) -> dict[str, Any]:
    blocks = [f"[{i}] {h.chunk.content}" for i, h in enumerate(hits, 1)]
    return {"role": "system", "content": INSTRUCTION + "\n\n" + "\n\n".join(blocks)}


def references(hits: list[Hit]) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "memory_id": h.chunk.memory_id,
            "content_id": h.content.id,
            "chunk_id": h.chunk.id,
            "content_key": h.content.key,
            "content_attrs": h.content.attrs,
            "chunk_index": h.chunk.chunk_index,
            "similarity": round(h.similarity, 6),
            "content": h.chunk.content,
        }
        for i, h in enumerate(hits, 1)
    ]
