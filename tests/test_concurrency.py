"""Many writers at once: every request succeeds (WAL + busy timeout on SQLite), nothing is lost."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import cli_json
from tests.v8_helpers import V8


async def test_concurrent_writes_on_many_sessions_and_conversations(parley):
    project = cli_json(parley.database_url, "projects", "create", "--name", "busy", "--model", "gpt-4o-mini", "--json")
    base = f"/api/project/{project['id']}/integration/api"
    v8 = V8(parley.url, cli_json(parley.database_url, "integrations", "create", "--name", "busy", "--json"))
    conversations = [v8.conversation()["id"] for _ in range(10)]

    async def session_turns(client: httpx.AsyncClient, n: int) -> list[int]:
        codes = []
        for turn in range(3):
            r = await client.post(
                base + "/chat/completions",
                headers={"x-session-id": f"s{n}"},
                json={"messages": [{"role": "user", "content": f"{n}-{turn}"}]},
            )
            codes.append(r.status_code)
        return codes

    async def v8_turn(client: httpx.AsyncClient, conv: str, n: int) -> int:
        r = await client.post(
            f"{parley.url}/v8/chat/conversations/{conv}/messages",
            headers={"authorization": f"Bearer {v8.token}"},
            json={"content": f"m{n}", "stream": False},
        )
        return r.status_code

    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(
        base_url=parley.url, headers={"authorization": f"Bearer {project['api_key']}"}, timeout=60, limits=limits
    ) as client:
        results = await asyncio.gather(
            *(session_turns(client, n) for n in range(30)),
            *(v8_turn(client, conversations[n % 10], n) for n in range(40)),
        )
    assert all(code == 200 for r in results[:30] for code in r)
    assert all(code == 200 for code in results[30:])
    with parley.client(key=project["api_key"]) as http:
        for n in range(30):
            messages = http.get(f"{base}/sessions/s{n}").json()["messages"]
            assert [m["content"] for m in messages] == [x for t in range(3) for x in (f"{n}-{t}", f"echo: {n}-{t}")]
    assert sum(len(v8.messages(c)) for c in conversations) == 80


async def test_two_concurrent_messages_on_one_conversation_take_turns(parley):
    v8 = V8(parley.url, cli_json(parley.database_url, "integrations", "create", "--name", "turns", "--json"))
    conv = v8.conversation(settings={"model": "slow-stream"})["id"]
    before = len(parley.upstream.rec.requests)

    async def send(client: httpx.AsyncClient, text: str) -> int:
        r = await client.post(f"/v8/chat/conversations/{conv}/messages", json={"content": text})
        return r.status_code

    async with httpx.AsyncClient(
        base_url=parley.url, headers={"authorization": f"Bearer {v8.token}"}, timeout=60
    ) as client:
        assert await asyncio.gather(send(client, "first"), send(client, "second")) == [200, 200]
    stored = v8.messages(conv)
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert {stored[0]["content"], stored[2]["content"]} == {"first", "second"}
    later = parley.upstream.rec.requests[before:][1]["messages"]
    assert [m["role"] for m in later] == ["user", "assistant", "user"]  # the second saw the whole first turn
