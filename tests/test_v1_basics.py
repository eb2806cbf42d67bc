"""/v1 through the official openai client: completions, streams, tools, models, embeddings."""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests.upstream_double import TOOL_CALLS, USAGE

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        "strict": True,
    },
}


def sdk(parley, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=parley.url + "/v1", api_key=parley.key, max_retries=0, **kw)


def test_non_streaming_completion_relays_upstream(parley):
    res = sdk(parley).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "你好"}],
        temperature=0.3,
        seed=7,
        extra_body={"custom_field": {"x": 1}},
    )
    assert res.object == "chat.completion"
    assert res.model == "gpt-4o-mini"
    assert res.choices[0].message.content == "echo: 你好"
    assert res.choices[0].finish_reason == "stop"
    assert res.usage.prompt_tokens == USAGE["prompt_tokens"] and res.usage.total_tokens == USAGE["total_tokens"]
    sent = parley.upstream.rec.last()
    assert sent["model"] == "echo"  # the upstream model name, not the public one
    assert sent["temperature"] == 0.3 and sent["seed"] == 7
    assert sent["custom_field"] == {"x": 1}  # unknown fields pass through
    headers = parley.upstream.rec.headers[-1]
    assert headers["authorization"] == "Bearer sk-upstream-secret"  # the provider's key, not the client's


def test_usage_is_counted_locally_when_upstream_gives_none(parley):
    res = sdk(parley).chat.completions.create(model="no-usage", messages=[{"role": "user", "content": "hello there"}])
    assert res.choices[0].message.content == "echo: hello there"
    assert res.usage.prompt_tokens > 0 and res.usage.completion_tokens > 0
    assert res.usage.total_tokens == res.usage.prompt_tokens + res.usage.completion_tokens
    # Its upstream sent no id and no created either: Parley gives the completion its own.
    assert res.id.startswith("chatcmpl-") and len(res.id) == len("chatcmpl-") + 24
    assert abs(res.created - time.time()) < 60


def test_streaming_with_usage_ends_with_usage_chunk_without_choices(parley):
    chunks = list(
        sdk(parley).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three "
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == USAGE["total_tokens"]
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1
    assert all(c.model == "gpt-4o-mini" for c in chunks)


def test_streaming_without_include_usage_sends_no_usage_chunk(parley):
    chunks = list(
        sdk(parley).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_cumulative_upstream_usage_is_not_summed_twice(parley):
    chunks = list(
        sdk(parley).chat.completions.create(
            model="double-usage",
            messages=[{"role": "user", "content": "a b c d"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == []
    assert usage_chunks[0].usage.total_tokens == USAGE["total_tokens"]


def test_stream_usage_is_counted_locally_when_upstream_gives_none(parley):
    chunks = list(
        sdk(parley).chat.completions.create(
            model="no-usage",
            messages=[{"role": "user", "content": "count me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_parallel_tool_calls_non_streaming(parley):
    res = sdk(parley).chat.completions.create(
        model="tools",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
        tool_choice="auto",
        parallel_tool_calls=True,
    )
    assert res.choices[0].finish_reason == "tool_calls"
    calls = res.choices[0].message.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == TOOL_CALLS
    assert parley.upstream.rec.last()["tools"][0]["function"]["strict"] is True


def test_streamed_parallel_tool_call_arguments_arrive_intact_and_in_order(parley):
    stream = sdk(parley).chat.completions.create(
        model="tools", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER], stream=True
    )
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = tc.id or slot["id"]
            slot["name"] += tc.function.name or ""
            slot["arguments"] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())] == TOOL_CALLS
    for c in calls.values():
        json.loads(c["arguments"])


def test_tool_result_round_trip(parley):
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "22°C"},
    ]
    res = sdk(parley).chat.completions.create(model="tools", messages=messages, tools=[WEATHER])
    assert res.choices[0].message.content == "echo: 22°C"
    assert parley.upstream.rec.last()["messages"][2] == messages[2]


def test_image_content_parts_pass_through(parley):
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
    ]
    res = sdk(parley).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}])
    assert res.choices[0].message.content == "echo: what is this"
    assert parley.upstream.rec.last()["messages"][0]["content"] == content


@pytest.mark.parametrize("header", ["authorization", "x-api-key", "x-goog-api-key"])
def test_three_auth_header_styles(parley, header):
    value = f"Bearer {parley.key}" if header == "authorization" else parley.key
    with parley.client(key="", **{header: value}) as http:
        r = http.get("/v1/models")
    assert r.status_code == 200, r.text


def test_models_list(parley):
    models = {m.id: m for m in sdk(parley).models.list()}
    assert {"gpt-4o-mini", "parley-offline", "use-multilingual-v3", "text-embedding-3-small"} <= set(models)
    assert models["gpt-4o-mini"].owned_by == "up"
    assert sdk(parley).models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"


def test_builtin_model_offline_says_what_it_is(parley):
    res = sdk(parley).chat.completions.create(model="parley-offline", messages=[{"role": "user", "content": "hi"}])
    text = res.choices[0].message.content
    assert "built-in offline model" in text and "config" in text and 'You said: "hi"' in text
    again = sdk(parley).chat.completions.create(model="parley-offline", messages=[{"role": "user", "content": "hi"}])
    assert again.choices[0].message.content == text  # deterministic
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in sdk(parley).chat.completions.create(
            model="parley-offline", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert streamed == text


def test_builtin_model_calls_tools(parley):
    res = sdk(parley).chat.completions.create(
        model="parley-offline", tools=[WEATHER], messages=[{"role": "user", "content": "Paris"}]
    )
    call = res.choices[0].message.tool_calls[0]
    assert res.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"location": "Paris"}


def test_local_embeddings_with_the_sdk(parley):
    res = sdk(parley).embeddings.create(model="use-multilingual-v3", input=["机器学习", "machine learning", "banana"])
    vecs = [d.embedding for d in res.data]
    assert len(vecs) == 3 and len(vecs[0]) == 512
    dot = lambda a, b: sum(x * y for x, y in zip(a, b, strict=True))  # noqa: E731
    assert dot(vecs[0], vecs[1]) > dot(vecs[0], vecs[2])  # cross-lingual paraphrase beats an unrelated word
    assert res.usage.prompt_tokens > 0


def test_upstream_embeddings_float_format(parley):
    with parley.client() as http:
        r = http.post(
            "/v1/embeddings", json={"model": "text-embedding-3-small", "input": "abcd", "encoding_format": "float"}
        )
    assert r.status_code == 200
    assert r.json()["data"] == [{"object": "embedding", "index": 0, "embedding": [4.0, 1.0, 0.0]}]


async def test_async_client_streaming(parley):
    client = openai.AsyncOpenAI(base_url=parley.url + "/v1", api_key=parley.key, max_retries=0)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "async works"}]
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "echo: async works "
    res = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert res.choices[0].message.content == "echo: x"
    await client.close()


def test_healthz_and_docs(parley):
    with parley.client() as http:
        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get("/docs").status_code == 200
        spec = http.get("/openapi.json").json()
    body = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatRequest"}
    assert "messages" in spec["components"]["schemas"]["ChatRequest"]["properties"]
    for path in (
        "/v8/chat/conversations/{conversation_id}/messages",
        "/v8/memories/{memory_id}/contents",
        "/api/project/{project_id}/integration/api/chat/completions",
    ):
        assert "requestBody" in spec["paths"][path]["post"], path
