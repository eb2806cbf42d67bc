"""Every wire format reachable from every other: each official SDK (OpenAI chat and Responses,
Anthropic, Gemini) against each kind of upstream (an OpenAI-compatible one, Anthropic, Gemini,
the built-in model), whole and streamed, plain text and a tool round trip with parallel calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as gtypes

from parley.app import create_app
from tests import anthropic_double, conftest, gemini_double
from tests.conftest import Upstream, cli_json
from tests.servers import ThreadedServer

FAST = {"connect": 2, "first_byte": 5, "idle": 5, "total": 30}
# egress -> (text model, tools model, how many calls the tools model makes, its final answer's start)
EGRESS = {
    "openai": ("oa", "oa-tools", 3, "echo: "),
    "anthropic": ("an", "an-tools", 2, "results: "),
    "gemini": ("ge", "ge-tools", 2, "results: "),
    "builtin": ("bi", "bi", 1, "The tool returned"),
}
WEATHER_SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}


@dataclass
class Stack:
    url: str
    key: str
    database_url: str
    claude: anthropic_double.Recorder


@pytest.fixture(scope="module")
def stack(upstream: Upstream, tmp_path_factory) -> Iterator[Stack]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('matrix') / 'parley.db'}"
    claude_rec = anthropic_double.Recorder()
    with (
        ThreadedServer(anthropic_double.build(claude_rec)) as claude,
        ThreadedServer(gemini_double.build(gemini_double.Recorder())) as gem,
    ):
        providers = [
            {"name": "up", "type": "openai", "base_url": upstream.url + "/v1", "timeouts": FAST},
            {"name": "claude", "type": "anthropic", "base_url": claude.url, "api_key": anthropic_double.API_KEY},
            {"name": "gem", "type": "gemini", "base_url": gem.url, "api_key": gemini_double.API_KEY},
            {"name": "builtin", "type": "builtin", "chunk_delay": 0},
        ]
        models = [
            {"name": "oa", "provider": "up", "upstream_model": "echo"},
            {"name": "oa-tools", "provider": "up", "upstream_model": "tools"},
            {"name": "an", "provider": "claude", "upstream_model": "claude-text"},
            {"name": "an-tools", "provider": "claude", "upstream_model": "claude-tools"},
            {"name": "an-think", "provider": "claude", "upstream_model": "claude-thinking"},
            {"name": "ge", "provider": "gem", "upstream_model": "gemini-text"},
            {"name": "ge-tools", "provider": "gem", "upstream_model": "gemini-tools"},
            {"name": "bi", "provider": "builtin"},
        ]
        settings = conftest.test_settings(url, upstream.url, providers=providers, models=models, default_model="oa")
        with ThreadedServer(create_app(settings)) as server:
            key = cli_json(url, "keys", "create", "--name", "matrix", "--json")["key"]
            yield Stack(server.url, key, url, claude_rec)


# ---- one client per ingress: (text, stream) -> reply text; tool round trip -> (calls, final) ----


def openai_text(stack: Stack, model: str, stream: bool) -> str:
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=stack.key, max_retries=0)
    messages: Any = [{"role": "user", "content": "hello"}]
    if not stream:
        return client.chat.completions.create(model=model, messages=messages).choices[0].message.content or ""
    chunks = client.chat.completions.create(model=model, messages=messages, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def openai_tools(stack: Stack, model: str, stream: bool) -> tuple[list[tuple[str, dict]], str]:
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=stack.key, max_retries=0)
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    messages: list[Any] = [{"role": "user", "content": "weather?"}]
    if stream:
        calls: dict[int, dict[str, str]] = {}
        for chunk in client.chat.completions.create(model=model, messages=messages, tools=tools, stream=True):
            for part in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = part.id or call["id"]
                call["name"] += (part.function.name or "") if part.function else ""
                call["arguments"] += (part.function.arguments or "") if part.function else ""
        made = [calls[i] for i in sorted(calls)]
    else:
        message = client.chat.completions.create(model=model, messages=messages, tools=tools).choices[0].message
        made = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in message.tool_calls or []
        ]
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in made
            ],
        }
    )
    messages += [{"role": "tool", "tool_call_id": c["id"], "content": f"sunny in {c['name']}"} for c in made]
    final = client.chat.completions.create(model=model, messages=messages, tools=tools).choices[0].message.content
    return [(c["name"], json.loads(c["arguments"])) for c in made], final or ""


def claude_text(stack: Stack, model: str, stream: bool) -> str:
    client = anthropic.Anthropic(base_url=stack.url, api_key=stack.key, max_retries=0)
    messages: Any = [{"role": "user", "content": "hello"}]
    if stream:
        with client.messages.stream(model=model, max_tokens=500, messages=messages) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(model=model, max_tokens=500, messages=messages)
    return "".join(b.text for b in message.content if b.type == "text")


def claude_tools(stack: Stack, model: str, stream: bool) -> tuple[list[tuple[str, dict]], str]:
    client = anthropic.Anthropic(base_url=stack.url, api_key=stack.key, max_retries=0)
    tools: Any = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
    messages: list[Any] = [{"role": "user", "content": "weather?"}]
    if stream:
        with client.messages.stream(model=model, max_tokens=500, messages=messages, tools=tools) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=500, messages=messages, tools=tools)
    uses = [b for b in first.content if b.type == "tool_use"]
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": u.id, "content": f"sunny in {u.name}"} for u in uses],
        },
    ]
    final = client.messages.create(model=model, max_tokens=500, messages=messages, tools=tools)
    return [(u.name, dict(u.input)) for u in uses], "".join(b.text for b in final.content if b.type == "text")


def gemini_text(stack: Stack, model: str, stream: bool) -> str:
    client = genai.Client(api_key=stack.key, http_options=gtypes.HttpOptions(base_url=stack.url))
    if stream:
        return "".join(c.text or "" for c in client.models.generate_content_stream(model=model, contents="hello"))
    return client.models.generate_content(model=model, contents="hello").text or ""


def gemini_tools(stack: Stack, model: str, stream: bool) -> tuple[list[tuple[str, dict]], str]:
    client = genai.Client(api_key=stack.key, http_options=gtypes.HttpOptions(base_url=stack.url))
    weather = gtypes.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER_SCHEMA)
    config = gtypes.GenerateContentConfig(
        tools=[gtypes.Tool(function_declarations=[weather])],
        automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
    )
    history: list[Any] = [gtypes.Content(role="user", parts=[gtypes.Part(text="weather?")])]
    if stream:
        chunks = list(client.models.generate_content_stream(model=model, contents=history, config=config))
        parts = [p for c in chunks for p in (c.candidates[0].content.parts or [])]
        calls = [p.function_call for p in parts if p.function_call]
        history.append(gtypes.Content(role="model", parts=parts))
    else:
        first = client.models.generate_content(model=model, contents=history, config=config)
        calls = first.function_calls or []
        history.append(first.candidates[0].content)
    history.append(
        gtypes.Content(
            role="user",
            parts=[
                gtypes.Part(
                    function_response=gtypes.FunctionResponse(
                        id=c.id, name=c.name, response={"r": f"sunny in {c.name}"}
                    )
                )
                for c in calls
            ],
        )
    )
    final = client.models.generate_content(model=model, contents=history, config=config)
    return [(c.name, dict(c.args or {})) for c in calls], final.text or ""


def responses_text(stack: Stack, model: str, stream: bool) -> str:
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=stack.key, max_retries=0)
    if stream:
        with client.responses.stream(model=model, input="hello") as events:
            return events.get_final_response().output_text
    return client.responses.create(model=model, input="hello").output_text


def responses_tools(stack: Stack, model: str, stream: bool) -> tuple[list[tuple[str, dict]], str]:
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=stack.key, max_retries=0)
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA, "strict": False}]
    if stream:
        with client.responses.stream(model=model, input="weather?", tools=tools) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(model=model, input="weather?", tools=tools)
    calls = [item for item in first.output if item.type == "function_call"]
    outputs: Any = [
        {"type": "function_call_output", "call_id": c.call_id, "output": f"sunny in {c.name}"} for c in calls
    ]
    final = client.responses.create(model=model, previous_response_id=first.id, input=outputs, tools=tools)
    return [(c.name, json.loads(c.arguments)) for c in calls], final.output_text


INGRESS = {
    "responses": (responses_text, responses_tools),
    "openai": (openai_text, openai_tools),
    "anthropic": (claude_text, claude_tools),
    "gemini": (gemini_text, gemini_tools),
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("egress", list(EGRESS))
@pytest.mark.parametrize("ingress", list(INGRESS))
def test_plain_text(stack, ingress, egress, stream):
    text = INGRESS[ingress][0](stack, EGRESS[egress][0], stream)
    if egress == "builtin":
        assert 'You said: "hello"' in text and "built-in offline model" in text
    else:
        assert text.strip() == "echo: hello"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("egress", list(EGRESS))
@pytest.mark.parametrize("ingress", list(INGRESS))
def test_tool_round_trip(stack, ingress, egress, stream):
    _, model, count, answer = EGRESS[egress]
    calls, final = INGRESS[ingress][1](stack, model, stream)
    assert len(calls) == count
    assert all(isinstance(args, dict) and args for _, args in calls)  # arguments arrive whole, parsed
    if egress == "builtin":
        assert calls[0] == ("get_weather", {"location": "weather?"})
    assert final.startswith(answer), final
    assert "sunny in" in final  # the results made it back, matched to their calls


def test_signed_thinking_survives_a_streamed_session_turn(stack):
    """Anthropic wants its signed thinking blocks back on the next turn: a streamed reply keeps
    them in the project session, and the next turn sends them."""
    project = cli_json(stack.database_url, "projects", "create", "--name", "think", "--model", "an-think", "--json")
    base = f"{stack.url}/api/project/{project['id']}/integration/api/chat/completions"
    headers = {"authorization": f"Bearer {project['api_key']}", "x-session-id": "thinking"}
    first = {"messages": [{"role": "user", "content": "one"}], "stream": True}
    assert httpx.post(base, json=first, headers=headers, timeout=30).status_code == 200
    second = {"messages": [{"role": "user", "content": "two"}]}
    assert httpx.post(base, json=second, headers=headers, timeout=30).status_code == 200
    sent = stack.claude.last()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    thinking = [b for b in sent[1]["content"] if b["type"] == "thinking"]
    assert thinking and thinking[0]["signature"] == anthropic_double.SIGNATURE
