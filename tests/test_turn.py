"""The one chat turn: request IDs, tool round trips in every dialect, replies cut off by a
client that leaves mid-stream (stored, with their usage), on both databases."""

from __future__ import annotations

import json
import logging

import httpx
import openai
import pytest

from tests.conftest import cli_json
from tests.polling import wait_for
from tests.upstream_double import TOOL_CALLS
from tests.v8_helpers import V8

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}


@pytest.fixture(scope="module")
def project(parley):
    made = cli_json(parley.database_url, "projects", "create", "--name", "turns", "--model", "tools", "--json")
    return {**made, "base": f"/api/project/{made['id']}/integration/api"}


@pytest.fixture(scope="module")
def app(parley):
    return cli_json(parley.database_url, "integrations", "create", "--name", "turns", "--json")


def test_project_tool_round_trip_with_assistant_message_without_content(parley, project):
    """litellm and ``model_dump(exclude_none=True)`` leave ``content`` out of an assistant
    message that only calls tools; the whole history comes back with the tool results."""
    calls = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in TOOL_CALLS]
    history = [
        {"role": "user", "content": "weather in SF?"},
        {"role": "assistant", "tool_calls": calls},  # no "content" key at all
        *({"role": "tool", "tool_call_id": i, "content": f"result of {n}"} for i, n, _ in TOOL_CALLS),
    ]
    with parley.client(key=project["api_key"]) as http:
        r = http.post(
            project["base"] + "/chat/completions",
            headers={"x-session-id": "no-content"},
            json={"messages": history, "tools": [WEATHER]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "echo: result of calculate"
        stored = http.get(project["base"] + "/sessions/no-content").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "tool", "tool", "assistant"]
    assert stored[1] == {"role": "assistant", "content": None, "tool_calls": calls}
    sent = parley.upstream.rec.last()["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": calls}


def test_every_response_carries_a_request_id(parley, project, app):
    v8 = V8(parley.url, app)
    with parley.client() as gw, parley.client(key=project["api_key"]) as pj, parley.client(key="") as anon:
        responses = [
            gw.get("/v1/models"),
            gw.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]}),
            gw.post(
                "/v1/chat/completions",
                json={"model": "echo", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            ),
            gw.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            gw.post("/v1/chat/completions", content=b"{not json"),
            anon.get("/v1/models"),
            gw.get("/no/such/route"),
            gw.get("/healthz"),
            pj.post(project["base"] + "/sessions"),
            v8.http.get("/chat/conversations"),
            v8.http.get("/chat/conversations/missing"),
        ]
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 404, 400, 401, 404, 200, 200, 200, 404]
    ids = [r.headers.get("x-request-id") for r in responses]
    assert all(i and i.startswith("req_") for i in ids), ids
    assert len(set(ids)) == len(ids)


def test_the_clients_own_request_id_is_kept_and_logged(parley, caplog):
    with caplog.at_level(logging.WARNING, logger="parley"), parley.client() as http:
        r = http.post(
            "/v1/chat/completions",
            headers={"x-request-id": "my-trace-42"},
            json={"model": "fail-500", "messages": [{"role": "user", "content": "x"}]},
        )
    assert r.status_code == 502 and r.headers["x-request-id"] == "my-trace-42"
    from parley.logs import JsonFormatter

    lines = [json.loads(JsonFormatter().format(rec)) for rec in caplog.records if rec.name.startswith("parley")]
    assert any(line.get("request_id") == "my-trace-42" for line in lines), lines


def test_openai_sdk_sees_the_request_id(parley):
    client = openai.OpenAI(base_url=parley.url + "/v1", api_key=parley.key, max_retries=0)
    completion = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert completion._request_id and completion._request_id.startswith("req_")


def _leave_after(http: httpx.Client, method: str, url: str, body: dict, chunks: int) -> None:
    """Read ``chunks`` data events of a stream, then hang up."""
    with http.stream(method, url, json=body) as r:
        assert r.status_code == 200
        seen = 0
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen += 1
                if seen >= chunks:
                    break


def test_a_client_that_leaves_mid_stream_keeps_the_partial_reply_in_its_session(parley):
    made = cli_json(parley.database_url, "projects", "create", "--name", "cut", "--model", "endless", "--json")
    base = f"/api/project/{made['id']}/integration/api"
    with parley.client(key=made["api_key"], **{"x-session-id": "leaving"}) as http:
        body = {"messages": [{"role": "user", "content": "go"}], "stream": True}
        _leave_after(http, "POST", base + "/chat/completions", body, 5)

        def stored():
            messages = http.get(base + "/sessions/leaving").json()["messages"]
            return messages if len(messages) == 2 else None

        messages = wait_for(stored, "the cut-off reply to be stored")
    assert messages[0] == {"role": "user", "content": "go"}
    reply = messages[1]
    assert reply["role"] == "assistant" and reply["cut_off"] is True
    assert reply["content"].startswith("0 1 2 ")  # what the client saw, at least


def test_a_client_that_leaves_mid_stream_keeps_the_partial_reply_in_its_conversation(parley, app):
    user = V8(parley.url, app, user_id="leaver")
    conv = user.conversation(settings={"model": "endless"})
    _leave_after(user.http, "POST", f"/chat/conversations/{conv['id']}/messages", {"content": "go"}, 5)

    def stored():
        messages = user.messages(conv["id"])
        return messages if len(messages) == 2 else None

    messages = wait_for(stored, "the cut-off reply to be stored")
    reply = messages[1]
    assert reply["role"] == "assistant" and reply["finish_reason"] == "cut_off"
    assert reply["content"].startswith("0 1 2 ")
    assert reply["usage"]["completion_tokens"] > 0  # counted locally: the upstream never sent usage
    # The conversation goes on: the next turn is not blocked by the one that was cut off.
    conv2 = user.conversation()
    assert user.send(conv2["id"], content="again", stream=False).status_code == 200
    r = user.send(conv["id"], content="and now?", stream=False, messages=[])
    assert r.status_code == 200


def test_a_final_assistant_message_is_passed_on_as_a_prefill(parley):
    messages = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi"}]
    with parley.client() as http:
        r = http.post("/v1/chat/completions", json={"model": "echo", "messages": messages})
    assert r.status_code == 200, r.text
    assert parley.upstream.rec.last()["messages"] == messages
