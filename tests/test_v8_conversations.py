"""v8 conversations and messages, walking seed 003's own examples over HTTP on both databases."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import cli_json
from tests.upstream_double import TOOL_CALLS, USAGE
from tests.v8_helpers import V8

SEED_DEFAULTS = {
    "model": "gpt-4o-mini",
    "temperature": 0.7,
    "max_tokens": 4096,
    "top_p": 0,
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "prompt": None,
    "history_messages_count": 10,
}
SEED_REFERENCES = {
    "memories": {"collections": [], "content_filter": None, "min_similarity": 0.5, "limit": 5, "unmatch_message": None}
}
SEED_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "获取指定位置的当前天气",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string", "description": "城市和省份,例如:北京,北京市"}},
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "calculate",
            "description": "执行数学计算",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string", "description": "要计算的数学表达式"}},
                "required": ["expression"],
            },
        },
    },
]


@pytest.fixture(scope="module")
def v8(parley) -> V8:
    return V8(parley.url, cli_json(parley.database_url, "integrations", "create", "--name", "v8", "--json"))


def test_models(v8):
    models = v8.http.get("/models").json()
    assert {"id": "gpt-4o-mini", "object": "model", "created": 1700000000, "owned_by": "up"} in models


def test_create_with_no_body_applies_the_seeds_defaults(v8):
    r = v8.http.post("/chat/conversations")
    assert r.status_code == 200
    conv = r.json()
    assert conv["settings"] == SEED_DEFAULTS and conv["reference_settings"] == SEED_REFERENCES
    assert conv["status"] == "active" and conv["external_user_id"] == "user-1"
    assert conv["integration_id"] == v8.app["app_id"] and conv["title"] is None
    assert conv["created_at"].endswith("Z")
    assert v8.http.get(f"/chat/conversations/{conv['id']}").json() == conv


def test_seed_dathor_client_flow(v8, parley):
    # createConversation("我的聊天") sends {title, settings: {}}; sendMessage streams by default.
    conv = v8.conversation(title="我的聊天", settings={})
    assert conv["title"] == "我的聊天"
    events = v8.events(conv["id"], content="你好,你能帮我做什么?", stream=True, tools=None)
    assert events[-1] == "[DONE]"
    body = events[:-1]
    assert all(e["type"] == 0 and e["model"] == "gpt-4o-mini" for e in body)
    assert "".join(e["content"] or "" for e in body) == "echo: 你好,你能帮我做什么? "
    assert all(e["finish_reason"] is None and e["usage"] is None for e in body[:-1])
    assert body[-1]["finish_reason"] == "stop" and body[-1]["usage"] == USAGE
    assert set(body[1]) == {"type", "model", "content", "finish_reason", "usage"}
    stored = v8.messages(conv["id"])
    assert [m["role"] for m in stored] == ["user", "assistant"]
    reply = stored[1]
    assert reply["content"] == "echo: 你好,你能帮我做什么? " and reply["model"] == "gpt-4o-mini"
    assert reply["finish_reason"] == "stop" and reply["usage"] == USAGE
    assert set(reply) >= {
        "id",
        "role",
        "content",
        "reasoning",
        "tool_calls",
        "tool_call_id",
        "attachments",
        "custom_data",
        "model",
        "finish_reason",
        "usage",
        "created_at",
    }


def test_seed_tool_call_example_and_tool_results(v8, parley):
    conv = v8.conversation(title="工具聊天", settings={"model": "tools"})
    r = v8.send(conv["id"], content="北京的天气怎么样?", stream=False, tools=SEED_TOOLS)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["finish_reason"] == "tool_calls" and reply["content"] is None
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in reply["tool_calls"]] == TOOL_CALLS
    assert reply["usage"] == USAGE and reply["model"] == "tools"
    results = [{"role": "tool", "tool_call_id": cid, "content": f"{name} ok"} for cid, name, _ in TOOL_CALLS]
    done = v8.send(conv["id"], messages=results, stream=False, tools=SEED_TOOLS).json()
    assert done["content"] == "echo: calculate ok" and done["finish_reason"] == "stop"
    sent = parley.upstream.rec.last()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "tool"]
    assert sent[1]["tool_calls"] == reply["tool_calls"]
    roles = [m["role"] for m in v8.messages(conv["id"])]
    assert roles == ["user", "assistant", "tool", "tool", "tool", "assistant"]


def test_streamed_tool_calls_build_up_across_events(v8):
    conv = v8.conversation(settings={"model": "tools"})
    events = v8.events(conv["id"], content="weather?", tools=SEED_TOOLS)[:-1]
    with_calls = [e for e in events if e.get("tool_calls")]
    assert with_calls and all(e["content"] is None for e in with_calls)
    lengths = [sum(len(c["function"]["arguments"]) for c in e["tool_calls"]) for e in with_calls]
    assert lengths == sorted(lengths)  # built up, never shrinking
    last = events[-1]
    assert last["finish_reason"] == "tool_calls" and last["usage"] == USAGE
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in last["tool_calls"]] == TOOL_CALLS


def test_reasoning_reaches_the_reasoning_field(v8):
    conv = v8.conversation(settings={"model": "reasoning"})
    events = v8.events(conv["id"], content="think")[:-1]
    assert "".join(e.get("reasoning", "") for e in events) == "Let me think."
    assert v8.messages(conv["id"])[-1]["reasoning"] == "Let me think."
    whole = v8.send(conv["id"], content="again", stream=False).json()
    assert whole["reasoning"] == "thinking about it"


def test_prompt_sampling_and_history_count(v8, parley):
    conv = v8.conversation(
        settings={
            "prompt": "你是助手",
            "history_messages_count": 2,
            "temperature": 0.1,
            "top_p": 0.9,
            "presence_penalty": 0.5,
        }
    )
    for word in ("one", "two", "three"):
        v8.send(conv["id"], content=word, stream=False)
    sent = parley.upstream.rec.last()
    assert sent["messages"] == [
        {"role": "system", "content": "你是助手"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "echo: two"},
        {"role": "user", "content": "three"},
    ]
    assert sent["temperature"] == 0.1 and sent["top_p"] == 0.9 and sent["presence_penalty"] == 0.5
    assert sent["max_tokens"] == 4096 and "frequency_penalty" not in sent


def test_history_window_never_splits_a_tool_call_from_its_results(v8, parley):
    conv = v8.conversation(settings={"model": "tools", "history_messages_count": 2})
    v8.send(conv["id"], content="w", stream=False, tools=SEED_TOOLS)
    results = [{"role": "tool", "tool_call_id": cid, "content": "ok"} for cid, _, _ in TOOL_CALLS]
    v8.send(conv["id"], messages=results, stream=False, tools=SEED_TOOLS)
    v8.send(conv["id"], content="next", stream=False)
    roles = [m["role"] for m in parley.upstream.rec.last()["messages"]]
    # The last two stored are [tool, assistant]; the window widens back to the call they answer.
    assert roles == ["assistant", "tool", "tool", "tool", "assistant", "user"]


def test_extra_messages_and_custom_data(v8, parley):
    conv = v8.conversation()
    r = v8.send(
        conv["id"],
        content="main",
        messages=[{"role": "user", "content": "额外的上下文"}],
        custom_data={"key1": "value1"},
        stream=False,
    )
    assert r.status_code == 200
    sent = parley.upstream.rec.last()["messages"]
    assert sent[-2:] == [{"role": "user", "content": "额外的上下文"}, {"role": "user", "content": "main"}]
    assert v8.messages(conv["id"])[0]["custom_data"] == {"key1": "value1"}


def test_attachments_image_document_audio(v8, parley):
    conv = v8.conversation()
    doc = "data:text/plain;base64," + base64.b64encode("季度报告:收入增长 12%".encode()).decode()
    wav = "data:audio/wav;base64," + base64.b64encode(b"RIFF0000WAVEfmt ").decode()
    r = v8.send(
        conv["id"],
        content="看看这些",
        stream=False,
        attachments=[
            {"type": "image", "url": "https://93.184.215.14/image.jpg", "metadata": {}},
            {"type": "document", "url": doc, "name": "report.txt"},
            {"type": "audio", "url": wav},
        ],
    )
    assert r.status_code == 200, r.text
    parts = parley.upstream.rec.last()["messages"][-1]["content"]
    assert parts[0]["type"] == "text" and "看看这些" in parts[0]["text"] and "收入增长 12%" in parts[0]["text"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": "https://93.184.215.14/image.jpg"}}
    assert parts[2]["type"] == "input_audio" and parts[2]["input_audio"]["format"] == "wav"
    stored = v8.messages(conv["id"])[0]["attachments"]
    assert stored[1]["text"] == "季度报告:收入增长 12%"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/secret.txt",
        "http://localhost/x.txt",
        "http://169.254.169.254/",
        "http://10.0.0.1/a.txt",
        "file:///etc/passwd",
    ],
)
def test_attachment_urls_may_not_reach_local_or_private_addresses(v8, url):
    conv = v8.conversation()
    r = v8.send(conv["id"], content="x", stream=False, attachments=[{"type": "document", "url": url}])
    assert r.status_code == 400
    assert any(w in r.json()["error"] for w in ("local or private", "Only http(s)", "Cannot resolve")), r.text
    assert v8.messages(conv["id"]) == []  # nothing stored for a refused request


def test_update_and_soft_delete(v8):
    conv = v8.conversation(title="old")
    r = v8.http.put(
        f"/chat/conversations/{conv['id']}",
        json={"title": "新的对话标题", "custom_data": {"k": "v"}, "settings": {"temperature": 1.2}},
    )
    assert r.status_code == 200 and r.json() == {"message": "对话更新成功"}
    got = v8.http.get(f"/chat/conversations/{conv['id']}").json()
    assert got["title"] == "新的对话标题" and got["custom_data"] == {"k": "v"}
    assert got["settings"] == {**SEED_DEFAULTS, "temperature": 1.2}
    assert v8.http.delete(f"/chat/conversations/{conv['id']}").json() == {"message": "对话删除成功"}
    assert v8.http.get(f"/chat/conversations/{conv['id']}").status_code == 404
    assert conv["id"] not in [c["id"] for c in v8.http.get("/chat/conversations").json()]
    assert v8.send(conv["id"], content="x").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"settings": {"temperature": 3}}, "settings.temperature"),
        ({"settings": {"temperature": "hot"}}, "settings.temperature"),
        ({"settings": {"max_tokens": 0}}, "settings.max_tokens"),
        ({"settings": {"top_p": 2}}, "settings.top_p"),
        ({"settings": {"unknown_setting": 1}}, "settings.unknown_setting"),
        ({"reference_settings": {"memories": {"min_similarity": 2}}}, "reference_settings.memories.min_similarity"),
        ({"title": 5}, "title"),
    ],
)
def test_invalid_settings_are_400_naming_the_field(v8, body, field):
    r = v8.http.post("/chat/conversations", json=body)
    assert r.status_code == 400 and set(r.json()) == {"error"} and field in r.json()["error"], r.text


def test_unknown_model_in_settings_is_400_or_404(v8):
    r = v8.http.post("/chat/conversations", json={"settings": {"model": "nope"}})
    assert r.status_code == 404 and "nope" in r.json()["error"]


def test_other_users_and_integrations_see_nothing(v8, parley):
    conv = v8.conversation(title="private")
    stranger = v8.as_user("user-2")
    other_app = V8(parley.url, cli_json(parley.database_url, "integrations", "create", "--name", "other", "--json"))
    for client in (stranger, other_app):
        assert client.http.get(f"/chat/conversations/{conv['id']}").json() == {"error": "Conversation not found"}
        assert client.http.get(f"/chat/conversations/{conv['id']}").status_code == 404
        assert client.send(conv["id"], content="hi").status_code == 404
        assert client.http.delete(f"/chat/conversations/{conv['id']}").status_code == 404
        assert conv["id"] not in [c["id"] for c in client.http.get("/chat/conversations").json()]


def test_delete_messages(v8):
    conv = v8.conversation()
    v8.send(conv["id"], content="a", stream=False)
    v8.send(conv["id"], content="b", stream=False)
    first = v8.messages(conv["id"])[0]["id"]
    assert v8.http.delete(f"/chat/conversations/{conv['id']}/messages/{first}").status_code == 200
    assert len(v8.messages(conv["id"])) == 3
    assert v8.http.delete(f"/chat/conversations/{conv['id']}/messages/{first}").status_code == 404
    r = v8.http.delete(f"/chat/conversations/{conv['id']}/messages")
    assert r.status_code == 200 and r.json()["deleted"] == 3
    assert v8.messages(conv["id"]) == []


def test_generate_title(v8):
    conv = v8.conversation()
    assert v8.http.post(f"/chat/conversations/{conv['id']}/generate-title").status_code == 400
    v8.send(conv["id"], content="如何学习机器学习", stream=False)
    r = v8.http.post(f"/chat/conversations/{conv['id']}/generate-title")
    assert r.status_code == 200
    title = r.json()["title"]
    assert title.startswith("echo:") and "\n" not in title
    assert v8.http.get(f"/chat/conversations/{conv['id']}").json()["title"] == title


def test_upstream_failure_mid_stream_keeps_the_user_message_only(v8):
    conv = v8.conversation(settings={"model": "drop"})
    events = v8.events(conv["id"], content="go")
    assert events[-1]["type"] == 2 and "dropped" in events[-1]["error"]
    assert "[DONE]" not in events
    assert [m["role"] for m in v8.messages(conv["id"])] == ["user"]


def test_upstream_failure_before_streaming_is_an_error_status(v8):
    conv = v8.conversation(settings={"model": "fail-500"})
    r = v8.send(conv["id"], content="go")
    assert r.status_code == 502 and "upstream exploded" in r.json()["error"]
    assert [m["role"] for m in v8.messages(conv["id"])] == ["user"]


def test_bad_message_bodies(v8):
    conv = v8.conversation()
    assert v8.send(conv["id"]).status_code == 400
    r = v8.send(conv["id"], content="x", stream="yes please")
    assert r.status_code == 400 and "stream" in r.json()["error"]
    r = v8.send(conv["id"], content="x", attachments=[{"type": "video", "url": "https://x"}])
    assert r.status_code == 400 and "attachments" in r.json()["error"]
