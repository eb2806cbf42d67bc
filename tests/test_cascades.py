"""Deleting an owner deletes everything it owns, on SQLite and PostgreSQL, by the database's own
foreign keys; and the migration that adds them clears rows orphaned before it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from parley.storage import db
from parley.storage.models import (
    ChatSession,
    Integration,
    Memory,
    MemoryChunk,
    MemoryContent,
    Project,
    SessionMessage,
)
from tests.conftest import cli, cli_json, fresh_database
from tests.v8_helpers import V8


def count(database_url: str, sql: str, **params: Any) -> int:
    async def run() -> int:
        engine = db.create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text(sql), params)).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(run())


def rows(database_url: str, table: str, column: str, values: list[str]) -> int:
    marks = ", ".join(f":v{i}" for i in range(len(values)))
    return count(
        database_url,
        f"SELECT count(*) FROM {table} WHERE {column} IN ({marks})",
        **{f"v{i}": v for i, v in enumerate(values)},
    )


# ---- deleting each kind of owner over the real API and CLI --------------------------------


def chat(parley, project: dict, session_id: str, content: str) -> None:
    with parley.client(key=project["api_key"], **{"x-session-id": session_id}) as http:
        r = http.post(
            f"/api/project/{project['id']}/integration/api/chat/completions",
            json={"messages": [{"role": "user", "content": content}]},
        )
    assert r.status_code == 200, r.text


def test_deleting_a_session_then_its_project(parley):
    project = cli_json(parley.database_url, "projects", "create", "--name", "owner", "--json")
    cli_json(parley.database_url, "projects", "keys", "create", project["id"], "--json")
    for session in ("s-1", "s-2"):
        chat(parley, project, session, "hello")
    url, pid = parley.database_url, [project["id"]]
    assert rows(url, "session_messages", "project_id", pid) == 4
    with parley.client(key=project["api_key"]) as http:
        assert http.delete(f"/api/project/{project['id']}/integration/api/sessions/s-1").status_code == 200
    assert (
        count(url, "SELECT count(*) FROM session_messages WHERE session_id = 's-1' AND project_id = :p", p=pid[0]) == 0
    )
    assert rows(url, "session_messages", "project_id", pid) == 2  # the other session keeps its transcript
    assert cli(url, "projects", "delete", project["id"]).returncode == 0
    for table in ("projects", "project_keys", "chat_sessions", "session_messages"):
        assert rows(url, table, "id" if table == "projects" else "project_id", pid) == 0, table


def test_deleting_a_content_a_memory_then_the_integration(parley):
    app = cli_json(parley.database_url, "integrations", "create", "--name", "owner", "--json")
    admin = V8(parley.url, app, user_id="boss", admin=True)
    user = V8(parley.url, app, user_id="alice")
    memories, contents = [], []
    for name in ("kept", "dropped"):
        memory = admin.http.post("/memories", json={"name": name, "max_tokens_per_chunk": 16}).json()
        memories.append(memory["id"])
        for text_ in ("第一段内容，足够长，可以切成几个块。" * 3, "Second content, long enough for a few chunks. " * 3):
            r = admin.http.post(f"/memories/{memory['id']}/contents", json={"content": text_})
            assert r.status_code == 200, r.text
            contents.append(r.json()["content_id"])
    conv = user.conversation(title="to go")
    assert user.send(conv["id"], content="hello", stream=False).status_code == 200
    url = parley.database_url
    assert rows(url, "memory_chunks", "memory_id", memories) > 4
    assert rows(url, "messages", "conversation_id", [conv["id"]]) == 2

    # A content: its chunks go, its memory's other content keeps its own.
    assert admin.http.delete(f"/memories/{memories[0]}/contents/{contents[0]}").status_code == 200
    assert rows(url, "memory_chunks", "content_id", [contents[0]]) == 0
    assert rows(url, "memory_chunks", "content_id", [contents[1]]) > 0
    # A memory: its contents and chunks go; the other memory is untouched.
    assert admin.http.delete(f"/memories/{memories[1]}").status_code == 200
    assert rows(url, "memory_contents", "memory_id", [memories[1]]) == 0
    assert rows(url, "memory_chunks", "memory_id", [memories[1]]) == 0
    assert rows(url, "memory_chunks", "content_id", contents[2:]) == 0
    assert rows(url, "memory_chunks", "memory_id", [memories[0]]) > 0
    # The integration: everything it owns goes.
    assert cli(url, "integrations", "delete", app["app_id"]).returncode == 0
    assert rows(url, "integrations", "id", [app["app_id"]]) == 0
    assert rows(url, "conversations", "integration_id", [app["app_id"]]) == 0
    assert rows(url, "messages", "conversation_id", [conv["id"]]) == 0
    assert rows(url, "memories", "integration_id", [app["app_id"]]) == 0
    assert rows(url, "memory_contents", "memory_id", memories) == 0
    assert rows(url, "memory_chunks", "memory_id", memories) == 0
    assert rows(url, "memory_chunks", "content_id", contents) == 0


def test_a_deleted_conversation_is_soft_deleted(parley):
    app = cli_json(parley.database_url, "integrations", "create", "--name", "soft", "--json")
    user = V8(parley.url, app, user_id="alice")
    conv = user.conversation()
    assert user.send(conv["id"], content="hello", stream=False).status_code == 200
    assert user.http.delete(f"/chat/conversations/{conv['id']}").status_code == 200
    assert user.http.get(f"/chat/conversations/{conv['id']}").status_code == 404
    url = parley.database_url
    assert count(url, "SELECT count(*) FROM conversations WHERE id = :c AND status = 'deleted'", c=conv["id"]) == 1
    assert rows(url, "messages", "conversation_id", [conv["id"]]) == 2  # kept with it, out of every API's sight


# ---- the migration on a database that already holds orphans --------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'orphans.db'}"
    return fresh_database(request.getfixturevalue("pg_server"))


def insert_rows(url: str, *statements: Any) -> None:
    async def run() -> None:
        engine = db.create_engine(url)
        try:
            async with engine.begin() as conn:
                for statement in statements:
                    await conn.execute(statement)
        finally:
            await engine.dispose()

    asyncio.run(run())


def message(session_id: str, position: int = 0) -> Any:
    return insert(SessionMessage.__table__).values(
        project_id="prj_1", session_id=session_id, position=position, message={"role": "user", "content": "x"}
    )


def chunk(chunk_id: str, memory_id: str, content_id: str) -> Any:
    return insert(MemoryChunk.__table__).values(
        id=chunk_id, memory_id=memory_id, content_id=content_id, version=1, chunk_index=0, content="x", token_count=1
    )


def test_migration_clears_orphans_then_enforces_the_keys(empty_url):
    cfg = db.alembic_config(empty_url)
    command.upgrade(cfg, "0005")  # the schema before the keys, as a server running today has it
    insert_rows(
        empty_url,
        insert(Project.__table__).values(id="prj_1", name="p"),
        insert(ChatSession.__table__).values(project_id="prj_1", id="live"),
        message("live"),
        message("gone"),  # its session was deleted without it
        insert(Integration.__table__).values(id="app_1", name="i", hash_token_sealed="x", admin_token_sealed="x"),
        insert(Memory.__table__).values(id="mem_1", integration_id="app_1", name="m", embedding_model="e"),
        insert(MemoryContent.__table__).values(id="c_1", memory_id="mem_1", content="x"),
        chunk("k_live", "mem_1", "c_1"),
        chunk("k_no_content", "mem_1", "c_gone"),
        chunk("k_no_memory", "mem_gone", "c_gone"),
    )
    command.upgrade(cfg, "head")
    assert count(empty_url, "SELECT count(*) FROM session_messages WHERE session_id = 'live'") == 1
    assert count(empty_url, "SELECT count(*) FROM session_messages") == 1
    assert count(empty_url, "SELECT count(*) FROM memory_chunks WHERE id = 'k_live'") == 1
    assert count(empty_url, "SELECT count(*) FROM memory_chunks") == 1
    for orphan in (message("gone", 1), chunk("k_new", "mem_1", "c_gone"), chunk("k_new2", "mem_gone", "c_1")):
        with pytest.raises(IntegrityError):
            insert_rows(empty_url, orphan)
    insert_rows(empty_url, text("DELETE FROM chat_sessions WHERE id = 'live'"), text("DELETE FROM memories"))
    assert count(empty_url, "SELECT count(*) FROM session_messages") == 0
    assert count(empty_url, "SELECT count(*) FROM memory_contents") == 0
    assert count(empty_url, "SELECT count(*) FROM memory_chunks") == 0
    command.downgrade(cfg, "0005")  # and back, for an operator who must roll back
    insert_rows(empty_url, message("gone", 2))
    command.upgrade(cfg, "head")
    assert count(empty_url, "SELECT count(*) FROM session_messages") == 0
