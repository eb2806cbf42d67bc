"""The embedding worker's poll: a poll that finds nothing queued only reads (no write lock on
SQLite), and one that finds work claims it as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.memory.jobs import EmbeddingWorker
from parley.storage import db
from parley.storage.models import Integration, Memory, MemoryChunk, MemoryContent, now
from tests.conftest import write_lock


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'poll.db'}"
    await asyncio.to_thread(db.migrate_sync, url)
    engine = db.create_engine(url)
    try:
        yield db.sessionmaker(engine)
    finally:
        await engine.dispose()


async def _chunks(sessions: async_sessionmaker[AsyncSession], *rows: dict[str, Any]) -> None:
    async with sessions() as s:
        await s.execute(insert(Integration).values(id="app", name="a", hash_token_sealed="x", admin_token_sealed="x"))
        await s.execute(insert(Memory).values(id="m", integration_id="app", name="kb", embedding_model="e"))
        await s.execute(insert(MemoryContent).values(id="c", memory_id="m", content="text", version=1))
        for i, row in enumerate(rows):
            await s.execute(
                insert(MemoryChunk).values(
                    id=f"x{i}",
                    memory_id="m",
                    content_id="c",
                    version=1,
                    chunk_index=i,
                    content="part",
                    token_count=1,
                    **row,
                )  # fmt: skip
            )
        await s.commit()


async def test_a_poll_that_finds_nothing_takes_no_write_lock(sessions, tmp_path):
    worker = EmbeddingWorker(sessions, router=None)
    await _chunks(sessions, {"embedding_status": "done"})
    holder = write_lock(tmp_path / "poll.db")  # another process writing, for as long as it likes
    try:
        # Before, each poll ran its UPDATE at once and waited out the 30 s busy timeout here.
        assert await asyncio.wait_for(worker.run_once(), 5) == 0
    finally:
        holder.rollback()
        holder.close()


async def test_a_poll_claims_what_is_due_and_what_it_already_holds(sessions):
    worker = EmbeddingWorker(sessions, router=None)
    later = now() + timedelta(minutes=2)
    await _chunks(
        sessions,
        {"embedding_status": "pending"},  # x0: due
        {"embedding_status": "pending", "not_before": later},  # x1: a retry, not yet due
        {"embedding_status": "processing", "lease_token": "other", "locked_until": later},  # x2: another's
        {"embedding_status": "processing", "lease_token": worker.token, "locked_until": later},  # x3: ours
        {"embedding_status": "processing", "lease_token": "gone", "locked_until": now() - timedelta(seconds=1)},
    )
    claimed = await worker._claim()
    assert sorted(c.id for c in claimed) == ["x0", "x3", "x4"]
    async with sessions() as s:
        held = {i: t for i, t in (await s.execute(select(MemoryChunk.id, MemoryChunk.lease_token))).all()}
    assert held == {"x0": worker.token, "x1": None, "x2": "other", "x3": worker.token, "x4": worker.token}


async def test_a_poll_with_nothing_due_claims_nothing(sessions):
    worker = EmbeddingWorker(sessions, router=None)
    later = now() + timedelta(minutes=2)
    await _chunks(
        sessions,
        {"embedding_status": "pending", "not_before": later},
        {"embedding_status": "processing", "lease_token": "other", "locked_until": later},
    )
    assert await worker._claim() == []
