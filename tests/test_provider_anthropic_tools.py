"""`type: anthropic` providers: tool calls through Parley's /v1/chat/completions in front of an
Anthropic double: tool definitions and tool_choice translated, calls whole and streamed as
OpenAI deltas, and tool results sent back in the Messages API's tool_result blocks.

Each test checks what the client gets (official openai SDK and raw HTTP, whole and streamed)
and what the double received: the exact Messages API request Parley translated.
"""

from __future__ import annotations

import json

import pytest

from tests.anthropic_double import TOOL_USES
from tests.anthropic_helpers import TOOLS
from tests.vendor_stack import Stack, deltas, finish_reasons, text_of, user


def _tool_request(**extra: object) -> dict:
    return {"model": "claude-tools", "messages": user("Weather and time in SF?"), "tools": TOOLS, **extra}


def test_tool_round_trip_whole(claude: Stack) -> None:
    client = claude.openai()
    first = client.chat.completions.create(**_tool_request())
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check both."
    calls = choice.message.tool_calls
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        (i, n, a) for i, n, a in TOOL_USES
    ]
    sent = claude.rec.last()
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather at a place",
            "input_schema": TOOLS[0]["function"]["parameters"],
        },
        {"name": "get_time", "input_schema": TOOLS[1]["function"]["parameters"]},
    ]
    assert "tool_choice" not in sent

    history = [
        *user("Weather and time in SF?"),
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18°C, fog"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": [{"type": "text", "text": "09:30"}]},
    ]
    second = client.chat.completions.create(model="claude-tools", messages=history, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == f"results: {calls[0].id}=18°C, fog {calls[1].id}=09:30"
    assert claude.rec.last()["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather and time in SF?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check both."},
                *({"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in TOOL_USES),
            ],
        },
        {
            "role": "user",  # both results in one user turn, as Anthropic wants them
            "content": [
                {"type": "tool_result", "tool_use_id": calls[0].id, "content": "18°C, fog"},
                {"type": "tool_result", "tool_use_id": calls[1].id, "content": [{"type": "text", "text": "09:30"}]},
            ],
        },
    ]


def test_tool_calls_stream_as_openai_deltas(claude: Stack) -> None:
    r, events = claude.stream_events(_tool_request())
    assert r.status_code == 200
    calls = [d["tool_calls"] for d in deltas(events) if d.get("tool_calls")]
    assert all(len(c) == 1 for c in calls)
    pieces = [c[0] for c in calls]
    heads = [p for p in pieces if "id" in p]
    assert heads == [
        {"index": n, "id": i, "type": "function", "function": {"name": name, "arguments": ""}}
        for n, (i, name, _) in enumerate(TOOL_USES)
    ]
    for n, (_, _, args) in enumerate(TOOL_USES):
        mine = [p for p in pieces if p["index"] == n and "id" not in p]
        assert len(mine) > 2 and all(
            set(p) == {"index", "function"} and set(p["function"]) == {"arguments"} for p in mine
        )
        assert json.loads("".join(p["function"]["arguments"] for p in mine)) == args
    assert text_of(events) == "Let me check both."
    assert finish_reasons(events) == ["tool_calls"]


def test_sdk_stream_tool_round_trip(claude: Stack) -> None:
    client = claude.openai()
    calls: dict[int, dict] = {}
    for chunk in client.chat.completions.create(**_tool_request(), stream=True):
        for part in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += part.id or ""
            call["name"] += (part.function.name or "") if part.function else ""
            call["arguments"] += (part.function.arguments or "") if part.function else ""
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())] == list(
        map(tuple, TOOL_USES)
    )
    history = [
        *user("Weather and time in SF?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for _, c in sorted(calls.items())
            ],
        },
        *({"role": "tool", "tool_call_id": c["id"], "content": f"ok {n}"} for n, c in sorted(calls.items())),
    ]
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="claude-tools", messages=history, tools=TOOLS, stream=True)
        if c.choices
    )
    assert text == f"results: {TOOL_USES[0][0]}=ok 0 {TOOL_USES[1][0]}=ok 1"


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "get_time"}}, None, {"type": "tool", "name": "get_time"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(claude: Stack, choice: object, parallel: object, expected: dict) -> None:
    body = _tool_request()
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    r = claude.post(body)
    assert r.status_code == 200, r.text
    assert claude.rec.last()["tool_choice"] == expected


def test_tool_arguments_that_are_not_an_object_go_back_wrapped(claude: Stack) -> None:
    history = [
        *user("x"),
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "get_time", "arguments": "{oops"}},
                {"id": "t2", "type": "function", "function": {"name": "get_time", "arguments": "[1]"}},
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "bad arguments"},
        {"role": "tool", "tool_call_id": "t2", "content": "bad arguments"},
    ]
    r = claude.post({"model": "claude-tools", "messages": history, "tools": TOOLS})
    assert r.status_code == 200, r.text
    assert [b["input"] for b in claude.rec.last()["messages"][1]["content"]] == [
        {"_raw_arguments": "{oops"},
        {"value": [1]},
    ]
