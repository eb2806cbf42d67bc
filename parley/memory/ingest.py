"""Bulk ingestion of files and folders into a memory (the CLI's ``parley memories ingest``).

Each file's text comes from the file-extraction library; its key is its absolute path, so
running the same ingestion again updates contents instead of duplicating them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.extract import ExtractionError, extract_file
from parley.extract.registry import EXTRACTORS, extension
from parley.memory.store import put_content
from parley.storage.models import Memory, MemoryContent


def files_under(paths: list[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(raw)


def supported(path: Path) -> bool:
    return extension(path.name) in EXTRACTORS


async def ingest_file(db: AsyncSession, memory: Memory, path: Path) -> str:
    """Returns "created", "updated", "unchanged", "empty" or "failed: …"."""
    try:
        text, metadata = extract_file(path)
    except (ExtractionError, OSError) as exc:
        return f"failed: {exc}"
    if not text.strip():
        return "empty"
    fields: dict[str, Any] = {
        "content": text,
        "content_type": "markdown" if path.suffix.lower() == ".md" else "text",
        "key": str(path),
        "attrs": {"source": str(path), "filename": path.name, "type": metadata.get("type")},
        "status": "enabled",
    }
    before = await db.scalar(
        select(MemoryContent.content).where(MemoryContent.memory_id == memory.id, MemoryContent.key == fields["key"])
    )
    _, created = await put_content(db, memory, fields)
    if created:
        return "created"
    return "unchanged" if before == text else "updated"
