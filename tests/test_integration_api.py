"""The project integration API (seeds 000/001): sessions the server keeps, on both databases."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from tests.conftest import cli_json
from tests.upstream_double import TOOL_CALLS

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "获取当前天气信息",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "城市名称"}},
            "required": ["location"],
        },
    },
}


def make_project(parley, *args: str) -> dict:
    return cli_json(parley.database_url, "projects", "create", "--name", "p", "--json", *args)


@pytest.fixture(scope="module")
def project(parley):
    made = make_project(parley, "--model", "gpt-4o-mini", "--system-prompt", "You are terse.", "--temperature", "0.2")
    return {**made, "base": f"/api/project/{made['id']}/integration/api"}


def chat(parley, project, body, key=None, **headers):
    with parley.client(key=key or project["api_key"], **headers) as http:
        return http.post(project["base"] + "/chat/completions", json=body)


def transcript(parley, project, session_id):
    with parley.client(key=project["api_key"]) as http:
        r = http.get(f"{project['base']}/sessions/{session_id}")
    assert r.status_code == 200, r.text
    return r.json()["messages"]


def test_seed_example_response_shape(parley, project):
    r = chat(parley, project, {"messages": [{"role": "user", "content": "你好!"}], "stream": False})
    assert r.status_code == 200, r.text
    body = r.json()
    session_id = r.headers["x-session-id"]
    assert body["session_id"] == session_id and session_id.startswith("session-")
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "echo: 你好!"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    sent = parley.upstream.rec.last()
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent["temperature"] == 0.2 and sent["model"] == "echo"


def test_newest_message_only_style_continues_the_session(parley, project):
    first = chat(parley, project, {"messages": [{"role": "user", "content": "one"}]})
    sid = first.headers["x-session-id"]
    second = chat(parley, project, {"messages": [{"role": "user", "content": "two"}]}, **{"x-session-id": sid})
    assert second.json()["session_id"] == sid
    assert parley.upstream.rec.last()["messages"][1:] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "echo: one"},
        {"role": "user", "content": "two"},
    ]
    assert transcript(parley, project, sid) == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "echo: one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "echo: two"},
    ]


def test_whole_history_style_does_not_duplicate_turns(parley, project):
    sid = "client-chosen:whole-history.1"
    chat(parley, project, {"messages": [{"role": "user", "content": "a"}]}, **{"x-session-id": sid})
    history = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "echo: a"},
        {"role": "user", "content": "b"},
    ]
    r = chat(parley, project, {"messages": history}, **{"x-session-id": sid})
    assert r.headers["x-session-id"] == sid
    assert parley.upstream.rec.last()["messages"][1:] == history
    assert len(transcript(parley, project, sid)) == 4


def test_deprecated_body_session_id_and_header_precedence(parley, project):
    r = chat(parley, project, {"messages": [{"role": "user", "content": "x"}], "session_id": "from-body"})
    assert r.json()["session_id"] == "from-body" and r.headers["x-session-id"] == "from-body"
    r = chat(
        parley,
        project,
        {"messages": [{"role": "user", "content": "y"}], "session_id": "from-body"},
        **{"x-session-id": "from-header"},
    )
    assert r.json()["session_id"] == "from-header"
    assert len(transcript(parley, project, "from-body")) == 2


def test_session_ids_are_scoped_to_their_project(parley, project):
    other = make_project(parley, "--model", "gpt-4o-mini")
    other["base"] = f"/api/project/{other['id']}/integration/api"
    chat(parley, project, {"messages": [{"role": "user", "content": "mine"}]}, **{"x-session-id": "shared-id"})
    chat(parley, other, {"messages": [{"role": "user", "content": "theirs"}]}, **{"x-session-id": "shared-id"})
    assert transcript(parley, project, "shared-id")[0]["content"] == "mine"
    assert transcript(parley, other, "shared-id")[0]["content"] == "theirs"


def test_tool_call_round_trip(parley):
    made = make_project(parley, "--model", "tools")
    p = {**made, "base": f"/api/project/{made['id']}/integration/api"}
    r = chat(parley, p, {"messages": [{"role": "user", "content": "旧金山的天气怎么样?"}], "tools": [WEATHER]})
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    calls = body["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in calls] == [c[0] for c in TOOL_CALLS]
    sid = body["session_id"]
    results = [
        {"role": "tool", "tool_call_id": cid, "name": name, "content": f"result of {name}"}
        for cid, name, _ in TOOL_CALLS
    ]
    r = chat(parley, p, {"messages": results, "tools": [WEATHER]}, **{"x-session-id": sid})
    assert r.json()["choices"][0]["message"]["content"] == "echo: result of calculate"
    stored = transcript(parley, p, sid)
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "tool", "tool", "assistant"]
    assert stored[1]["tool_calls"] == calls
    sent = parley.upstream.rec.last()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "tool"]


def test_project_default_tools_apply(parley, tmp_path):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([WEATHER]))
    made = make_project(parley, "--model", "tools", "--tools-file", str(tools))
    p = {**made, "base": f"/api/project/{made['id']}/integration/api"}
    r = chat(parley, p, {"messages": [{"role": "user", "content": "weather"}]})
    assert r.json()["choices"][0]["finish_reason"] == "tool_calls"
    assert parley.upstream.rec.last()["tools"] == [WEATHER]


def test_streaming_chunks_carry_session_id_and_end_with_done(parley, project):
    with (
        parley.client(key=project["api_key"]) as http,
        http.stream(
            "POST",
            project["base"] + "/chat/completions",
            json={"messages": [{"role": "user", "content": "stream me"}], "stream": True},
        ) as r,
    ):
        assert r.status_code == 200
        sid = r.headers["x-session-id"]
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(c["session_id"] == sid and c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "echo: stream me "
    assert transcript(parley, project, sid)[-1] == {"role": "assistant", "content": "echo: stream me "}


def test_openai_sdk_works_against_the_project_endpoint(parley, project):
    client = openai.OpenAI(base_url=parley.url + project["base"], api_key=project["api_key"], max_retries=0)
    res = client.chat.completions.create(
        model="ignored", messages=[{"role": "user", "content": "sdk"}], extra_headers={"X-Session-ID": "sdk-session"}
    )
    assert res.choices[0].message.content == "echo: sdk"
    assert res.model == "gpt-4o-mini"  # the project's model; overrides are off
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="x",
            stream=True,
            messages=[{"role": "user", "content": "again"}],
            extra_headers={"X-Session-ID": "sdk-session"},
        )
    )
    assert text == "echo: again "
    assert len(transcript(parley, project, "sdk-session")) == 4


def test_unnamed_model_is_labelled_pathway_default(parley):
    made = make_project(parley)
    p = {**made, "base": f"/api/project/{made['id']}/integration/api"}
    assert chat(parley, p, {"messages": [{"role": "user", "content": "x"}]}).json()["model"] == "pathway-default"


def test_sessions_api(parley, project):
    with parley.client(key=project["api_key"]) as http:
        created = http.post(project["base"] + "/sessions")
        assert created.status_code == 200
        sid = created.json()["session_id"]
        assert http.get(f"{project['base']}/sessions/{sid}").json()["messages"] == []
        chat(parley, project, {"messages": [{"role": "user", "content": "hi"}]}, **{"x-session-id": sid})
        assert len(http.get(f"{project['base']}/sessions/{sid}").json()["messages"]) == 2
        assert http.delete(f"{project['base']}/sessions/{sid}").json() == {"session_id": sid, "deleted": True}
        assert http.get(f"{project['base']}/sessions/{sid}").status_code == 404
        chosen = http.post(project["base"] + "/sessions", json={"session_id": "my-own"})
        assert chosen.json()["session_id"] == "my-own"


def test_bare_key_without_bearer_is_accepted(parley, project):
    with httpx.Client(base_url=parley.url, headers={"authorization": project["api_key"]}) as http:
        r = http.post(project["base"] + "/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200


def test_errors(parley, project):
    other = make_project(parley)
    r = chat(parley, project, {"messages": [{"role": "user", "content": "x"}]}, key=other["api_key"])
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    with parley.client(key=project["api_key"]) as http:
        r = http.post(
            "/api/project/prj_nope/integration/api/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}]},
        )
    assert r.status_code == 404 and "prj_nope" in r.json()["error"]["message"]
    r = chat(parley, project, {"messages": [{"role": "user", "content": 5}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].content"
    r = chat(parley, project, {"stream": False})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    for bad in ("has space", "x" * 129, "semi;colon", "ümlaut"):
        r = chat(parley, project, {"messages": [{"role": "user", "content": "x"}], "session_id": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "session_id", bad
    with parley.client(key="") as http:
        r = http.post(project["base"] + "/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 401


def test_upstream_failure_keeps_the_user_turn_and_stores_no_reply(parley):
    made = make_project(parley, "--model", "fail-500")
    p = {**made, "base": f"/api/project/{made['id']}/integration/api"}
    r = chat(parley, p, {"messages": [{"role": "user", "content": "please"}]}, **{"x-session-id": "failing"})
    assert r.status_code == 502 and "upstream exploded" in r.json()["error"]["message"]
    assert transcript(parley, p, "failing") == [{"role": "user", "content": "please"}]
    # A retry of the same turn does not store the user's message twice.
    chat(parley, p, {"messages": [{"role": "user", "content": "please"}]}, **{"x-session-id": "failing"})
    assert transcript(parley, p, "failing") == [{"role": "user", "content": "please"}]


def test_mid_stream_failure_stores_no_half_reply(parley):
    made = make_project(parley, "--model", "drop")
    p = {**made, "base": f"/api/project/{made['id']}/integration/api"}
    with (
        parley.client(key=p["api_key"]) as http,
        http.stream(
            "POST",
            p["base"] + "/chat/completions",
            headers={"x-session-id": "dropping"},
            json={"messages": [{"role": "user", "content": "go"}], "stream": True},
        ) as r,
    ):
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert "error" in json.loads(lines[-1][6:])
    assert transcript(parley, p, "dropping") == [{"role": "user", "content": "go"}]


async def test_two_concurrent_requests_on_one_session_take_turns(parley):
    made = make_project(parley, "--model", "slow-stream")
    base = f"/api/project/{made['id']}/integration/api"
    before = len(parley.upstream.rec.requests)

    async def send(client: httpx.AsyncClient, text: str) -> int:
        r = await client.post(
            base + "/chat/completions",
            headers={"x-session-id": "busy"},
            json={"messages": [{"role": "user", "content": text}], "stream": True},
        )
        return r.status_code

    async with httpx.AsyncClient(
        base_url=parley.url, headers={"authorization": f"Bearer {made['api_key']}"}, timeout=30
    ) as client:
        codes = await asyncio.gather(send(client, "first"), send(client, "second"))
    assert codes == [200, 200]
    stored = transcript(parley, {**made, "base": base}, "busy")
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert {stored[0]["content"], stored[2]["content"]} == {"first", "second"}
    later = parley.upstream.rec.requests[before:][1]["messages"]
    assert [m["role"] for m in later] == ["user", "assistant", "user"]  # the second saw the first's whole turn
