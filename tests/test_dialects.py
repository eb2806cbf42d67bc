"""Anthropic's and Gemini's wire formats served by Parley, judged by the official SDKs, over the
OpenAI-compatible upstream double and the built-in model."""

from __future__ import annotations

import base64
import json

import anthropic
import httpx
import pytest
from google import genai
from google.genai import types as gtypes

from tests.upstream_double import TOOL_CALLS

PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")).decode()
WEATHER_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


@pytest.fixture(scope="module")
def claude(parley):
    return anthropic.Anthropic(base_url=parley.url, api_key=parley.key, max_retries=0)


@pytest.fixture(scope="module")
def gemini_client(parley):
    return genai.Client(api_key=parley.key, http_options=gtypes.HttpOptions(base_url=parley.url))


# ---- Anthropic ------------------------------------------------------------------------------


def test_anthropic_sdk_whole_message(parley, claude):
    message = claude.messages.create(
        model="echo",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello there"}],
        stop_sequences=["END"],
    )
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.model == "echo"
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "echo: Hello there"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 11 and message.usage.output_tokens == 7  # the upstream's own counts
    sent = parley.upstream.rec.last()
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    assert sent["max_tokens"] == 100 and sent["stop"] == ["END"]


def test_anthropic_sdk_stream_accumulates_the_same_message(claude):
    with claude.messages.stream(
        model="echo", max_tokens=50, messages=[{"role": "user", "content": "stream this please"}]
    ) as stream:
        names = [event.type for event in stream]
        final = stream.get_final_message()
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "content_block_start" in names and "content_block_stop" in names and "message_delta" in names
    assert final.content[0].text == "echo: stream this please "
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 7


def test_anthropic_sdk_tool_round_trip_with_parallel_calls(parley, claude):
    first = claude.messages.create(
        model="tools",
        max_tokens=200,
        tools=[WEATHER_ANTHROPIC],
        messages=[{"role": "user", "content": "weather and time?"}],
    )
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [(u.id, u.name, u.input) for u in uses] == [(i, n, json.loads(a)) for i, n, a in TOOL_CALLS]
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": f"result of {u.name}"} for u in uses]
    second = claude.messages.create(
        model="tools",
        max_tokens=200,
        tools=[WEATHER_ANTHROPIC],
        messages=[
            {"role": "user", "content": "weather and time?"},
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": results},
        ],
    )
    assert second.content[0].text == "echo: result of calculate"
    sent = parley.upstream.rec.last()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "tool"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == [c[0] for c in TOOL_CALLS]
    assert sent[2] == {"role": "tool", "tool_call_id": "call_a", "content": "result of get_weather"}
    assert parley.upstream.rec.last()["tools"][0]["function"]["parameters"] == WEATHER_ANTHROPIC["input_schema"]


def test_anthropic_sdk_streams_interleaved_parallel_calls_in_order(claude):
    """The double interleaves three calls' argument pieces; Anthropic's stream keeps one block
    open at a time, so every call arrives whole and in order."""
    with claude.messages.stream(
        model="tools",
        max_tokens=200,
        tools=[WEATHER_ANTHROPIC],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "go"}],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.id, u.name, u.input) for u in uses] == [(i, n, json.loads(a)) for i, n, a in TOOL_CALLS]
    opened: list[int] = []
    for e in events:
        if e.type == "content_block_start":
            assert not opened or opened[-1] is None, "a block started before the previous one stopped"
            opened.append(e.index)
        if e.type == "content_block_stop":
            opened.append(None)  # type: ignore[arg-type]
    assert final.stop_reason == "tool_use"


def test_anthropic_image_and_tool_choice_reach_the_upstream(parley, claude):
    claude.messages.create(
        model="echo",
        max_tokens=10,
        tools=[WEATHER_ANTHROPIC],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "text", "text": "what is this?"},
                ],
            }
        ],
    )
    sent = parley.upstream.rec.last()
    assert sent["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "text", "text": "what is this?"},
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False


def test_anthropic_sdk_against_the_builtin_model(claude):
    message = claude.messages.create(
        model="parley-offline", max_tokens=400, messages=[{"role": "user", "content": "hi"}]
    )
    assert "built-in offline model" in message.content[0].text


def test_anthropic_count_tokens(claude):
    counted = claude.messages.count_tokens(model="echo", messages=[{"role": "user", "content": "Hello there"}])
    assert counted.input_tokens > 0


def test_anthropic_errors_have_anthropics_shape(parley):
    with httpx.Client(base_url=parley.url, timeout=30) as http:
        body = {"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        r = http.post("/v1/messages", json=body, headers={"x-api-key": "sk-wrong"})
        assert r.status_code == 401
        assert r.json() == {
            "type": "error",
            "error": {"type": "authentication_error", "message": r.json()["error"]["message"]},
        }
        r = http.post("/v1/messages", json={**body, "model": "nope"}, headers={"x-api-key": parley.key})
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
        r = http.post("/v1/messages", json={"model": "echo", "messages": []}, headers={"x-api-key": parley.key})
        assert r.status_code == 400 and r.json()["type"] == "error"
        assert r.json()["error"]["type"] == "invalid_request_error" and "max_tokens" in r.json()["error"]["message"]
        r = http.post(
            "/v1/messages",
            json={**body, "model": "fail-500"},
            headers={"authorization": f"Bearer {parley.key}", "anthropic-version": "2099-01-01"},
        )
        assert r.status_code == 502 and r.json()["error"]["type"] == "api_error"


def test_anthropic_sdk_raises_its_own_errors(parley):
    client = anthropic.Anthropic(base_url=parley.url, api_key="sk-nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model="echo", max_tokens=5, messages=[{"role": "user", "content": "x"}])


# ---- Gemini ---------------------------------------------------------------------------------


def test_genai_sdk_generate_content(parley, gemini_client):
    response = gemini_client.models.generate_content(
        model="echo",
        contents="Hello Gemini",
        config=gtypes.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=64, temperature=0.2),
    )
    assert response.text == "echo: Hello Gemini"
    assert response.candidates[0].finish_reason == gtypes.FinishReason.STOP
    assert response.usage_metadata.prompt_token_count == 11 and response.usage_metadata.candidates_token_count == 7
    sent = parley.upstream.rec.last()
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello Gemini"}]
    assert sent["max_tokens"] == 64 and sent["temperature"] == 0.2


def test_genai_sdk_stream(gemini_client):
    chunks = list(gemini_client.models.generate_content_stream(model="echo", contents="stream it"))
    assert "".join(c.text or "" for c in chunks) == "echo: stream it "
    assert chunks[-1].candidates[0].finish_reason == gtypes.FinishReason.STOP
    assert chunks[-1].usage_metadata.total_token_count == 18


def test_genai_sdk_function_calling_round_trip(parley, gemini_client):
    weather = gtypes.FunctionDeclaration(
        name="get_weather",
        description="Weather in a city",
        parameters=gtypes.Schema(
            type=gtypes.Type.OBJECT,
            properties={"location": gtypes.Schema(type=gtypes.Type.STRING)},
            required=["location"],
        ),
    )
    config = gtypes.GenerateContentConfig(
        tools=[gtypes.Tool(function_declarations=[weather])],
        automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
    )
    first = gemini_client.models.generate_content(model="tools", contents="weather?", config=config)
    calls = first.function_calls
    assert [(c.name, c.args) for c in calls] == [(n, json.loads(a)) for _, n, a in TOOL_CALLS]
    sent_tools = parley.upstream.rec.last()["tools"]
    assert sent_tools[0]["function"]["parameters"] == {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    }
    history = [
        gtypes.Content(role="user", parts=[gtypes.Part(text="weather?")]),
        first.candidates[0].content,
        gtypes.Content(
            role="user",
            parts=[gtypes.Part.from_function_response(name=c.name, response={"result": f"r-{c.name}"}) for c in calls],
        ),
    ]
    second = gemini_client.models.generate_content(model="tools", contents=history, config=config)
    assert second.text == 'echo: {"result":"r-calculate"}'
    sent = parley.upstream.rec.last()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "tool"]
    call_ids = [c["id"] for c in sent[1]["tool_calls"]]
    assert [m["tool_call_id"] for m in sent[2:]] == call_ids  # each result matched to its call


def test_genai_streamed_function_calls_arrive_whole(gemini_client):
    weather = gtypes.FunctionDeclaration(name="get_weather", parameters_json_schema={"type": "object"})
    config = gtypes.GenerateContentConfig(tools=[gtypes.Tool(function_declarations=[weather])])
    chunks = list(gemini_client.models.generate_content_stream(model="tools", contents="weather?", config=config))
    calls = [c for chunk in chunks for c in (chunk.function_calls or [])]
    assert [(c.name, c.args) for c in calls] == [(n, json.loads(a)) for _, n, a in TOOL_CALLS]


def test_gemini_image_and_routes_under_v1(parley):
    body = {
        "contents": [
            {"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": PNG}}, {"text": "what?"}]}
        ]
    }
    with httpx.Client(base_url=parley.url, timeout=30) as http:
        r = http.post("/v1/models/echo:generateContent", json=body, headers={"x-goog-api-key": parley.key})
        assert r.status_code == 200, r.text
        assert r.json()["candidates"][0]["content"]["parts"] == [{"text": "echo: what?"}]
        assert parley.upstream.rec.last()["messages"][0]["content"][0] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}"},
        }
        r = http.post(f"/v1beta/models/echo:generateContent?key={parley.key}", json=body)
        assert r.status_code == 200


def test_gemini_errors_have_googles_shape(parley):
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    with httpx.Client(base_url=parley.url, timeout=30) as http:
        r = http.post("/v1beta/models/echo:generateContent", json=body, headers={"x-goog-api-key": "wrong"})
        assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
        r = http.post("/v1beta/models/nope:generateContent", json=body, headers={"x-goog-api-key": parley.key})
        assert r.status_code == 404 and r.json()["error"] == {
            "code": 404,
            "message": r.json()["error"]["message"],
            "status": "NOT_FOUND",
        }
        r = http.post(
            "/v1beta/models/echo:generateContent", json={"contents": []}, headers={"x-goog-api-key": parley.key}
        )
        assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_genai_sdk_against_the_builtin_model(gemini_client):
    response = gemini_client.models.generate_content(model="parley-offline", contents="hi")
    assert "built-in offline model" in response.text


# ---- routing --------------------------------------------------------------------------------


def test_methods_a_dialect_route_does_not_take_are_405_with_allow(parley):
    """The dialects' routes take POST only; other methods get 405 in the dialect's shape with
    ``Allow``, and a path shared with /v1's model routes keeps answering what those allow."""
    key = {"x-api-key": parley.key}
    with httpx.Client(base_url=parley.url, timeout=30, headers=key) as http:
        for path in ("/v1/messages", "/v1/messages/count_tokens"):
            r = http.get(path)
            assert (r.status_code, r.headers["allow"]) == (405, "POST")
            assert r.json() == {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "Method Not Allowed"},
            }
        r = http.put("/v1beta/models/echo:generateContent", json={})
        assert (r.status_code, r.headers["allow"]) == (405, "POST")
        assert r.json() == {"error": {"code": 405, "message": "Method Not Allowed", "status": "INVALID_ARGUMENT"}}
        r = http.put("/v1/models/echo", json={})  # /v1's GET /v1/models/{model} comes first
        assert (r.status_code, r.headers["allow"]) == (405, "GET")
        assert http.get("/v1/models/echo").json()["id"] == "echo"
        r = http.post("/v1beta/models/echo:unknownMethod", json={})
        assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
