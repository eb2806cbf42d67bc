"""Writers of one memory's rows at the same time on PostgreSQL: the embedding worker, a content's
replacement and the memory's deletion take their row locks in one order (memory, contents,
chunks), so none is a deadlock's victim and none fails on a row another took away."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.errors import NotFound
from parley.memory import store
from parley.memory.jobs import EmbeddingWorker
from parley.storage import db
from parley.storage.models import Integration, Memory, MemoryChunk, MemoryContent, now
from tests.conftest import fresh_database


@pytest.fixture
def url(pg_server: str) -> str:
    made = fresh_database(pg_server)
    db.migrate_sync(made)
    return made


async def _memory_with_content(s: AsyncSession, text: str) -> None:
    """Memory "m" of integration "app", with content "c" (version 1); the caller commits."""
    await s.execute(insert(Integration).values(id="app", name="a", hash_token_sealed="x", admin_token_sealed="x"))
    await s.execute(insert(Memory).values(id="m", integration_id="app", name="kb", embedding_model="e"))
    await s.execute(insert(MemoryContent).values(id="c", memory_id="m", content=text, version=1))


async def test_a_replacement_deleting_chunks_the_worker_is_finishing_waits_for_it(url: str) -> None:
    """The replacement's statements, in the order ``memory/store.py`` runs them: the content's
    row, then the chunks of versions never made active (here one by one, in the order that
    crosses the worker's). The worker finishing those very chunks waits on the content's row
    instead of holding a chunk the replacement needs next."""
    engine = db.create_engine(url)
    sessions = db.sessionmaker(engine)
    worker = EmbeddingWorker(sessions, router=None)
    try:
        async with sessions() as s:
            await _memory_with_content(s, "two chunks")
            await s.execute(
                insert(MemoryChunk),
                [
                    dict(
                        id=f"x{i}",
                        memory_id="m",
                        content_id="c",
                        version=1,
                        chunk_index=i,
                        content=f"part {i}",
                        token_count=2,
                        embedding_status="processing",
                        lease_token=worker.token,
                        locked_until=now() + timedelta(minutes=2),
                        created_at=now() + timedelta(seconds=i),
                    )
                    for i in (1, 2)
                ],
            )
            await s.commit()
            group = list((await s.scalars(select(MemoryChunk).order_by(MemoryChunk.created_at))).all())

        async with sessions() as put:
            await put.execute(update(MemoryContent).where(MemoryContent.id == "c").values(version=2, content="new"))
            await put.execute(delete(MemoryChunk).where(MemoryChunk.id == "x2"))
            finishing = asyncio.create_task(worker._finish(group, [[1.0, 0.0], [0.0, 1.0]], ["part", "part"], None))
            await asyncio.sleep(1.5)  # past deadlock_timeout (1 s): a cycle would be detected by now
            assert not finishing.done()  # waiting on the content's row, holding no chunk
            await put.execute(delete(MemoryChunk).where(MemoryChunk.content_id == "c", MemoryChunk.active.is_(False)))
            await put.commit()
        await asyncio.wait_for(finishing, 30)  # then finds nothing of its own left, and no error

        async with sessions() as s:
            assert (await s.scalars(select(MemoryChunk.id))).all() == []
            assert (await s.scalar(select(MemoryContent.version).where(MemoryContent.id == "c"))) == 2
    finally:
        await engine.dispose()


@pytest.mark.parametrize(("content_id", "key"), [("c", None), (None, "k")], ids=["replace", "create"])
async def test_a_write_racing_the_memorys_deletion_finds_it_gone(
    url: str, content_id: str | None, key: str | None
) -> None:
    """The memory is being deleted (its cascade holds the content's row) when a write to it
    starts. A replacement holds the memory's row first, a create's foreign key check takes it:
    either waits for the deletion, then answers 404, not a 500 from a content gone under it."""
    engine = db.create_engine(url)
    sessions = db.sessionmaker(engine)
    try:
        async with sessions() as s:
            await _memory_with_content(s, "old")
            await s.commit()
        fields = {"content": "new", "content_type": "text", "key": key, "attrs": None, "status": "enabled"}

        async def write() -> None:
            async with sessions() as put:
                memory = await store.get_memory(put, "app", "m")
                await store.put_content(put, memory, fields, content_id)

        async with sessions() as deleting:
            await deleting.execute(delete(Memory).where(Memory.id == "m"))
            writing = asyncio.create_task(write())
            await asyncio.sleep(1.5)  # past deadlock_timeout (1 s)
            assert not writing.done()  # waiting on the memory's row
            await deleting.commit()
        with pytest.raises(NotFound, match="Memory not found"):
            await asyncio.wait_for(writing, 30)
        async with sessions() as s:
            assert (await s.scalars(select(MemoryContent.id))).all() == []
    finally:
        await engine.dispose()
