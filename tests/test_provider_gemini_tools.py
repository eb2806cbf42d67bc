"""`type: gemini` providers: tool calls through Parley's /v1 in front of a Gemini API double:
tool definitions (their JSON schemas rewritten to what Gemini accepts) and tool_choice, calls
whole and streamed with stable ids and thought signatures, and tool results sent back as
functionResponse parts.

Each test checks what the client gets (official openai SDK and raw HTTP, whole and streamed)
and what the double received: the exact generateContent request Parley translated.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from parley.wire.gemini import SKIP_SIGNATURE, tool_call_id
from tests.gemini_double import CALLS, SIGNATURE
from tests.vendor_stack import Stack, deltas, error_of, finish_reasons, text_of, user

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather at a place",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
                "required": ["location"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
        },
    },
]
DECLARATIONS = [
    {
        "name": "get_weather",
        "description": "Weather at a place",
        "parameters": {
            "type": "OBJECT",
            "properties": {
                "location": {"type": "STRING"},
                "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
    {"name": "get_time", "parameters": {"type": "OBJECT", "properties": {"timezone": {"type": "STRING"}}}},
]
IDS = [tool_call_id(name, n, args) for n, (name, args) in enumerate(CALLS)]


def _tool_request(**extra: Any) -> dict:
    return {"model": "gemini-tools", "messages": user("Weather and time in SF?"), "tools": TOOLS, **extra}


def test_tool_round_trip_whole(gemini: Stack) -> None:
    client = gemini.openai()
    first = client.chat.completions.create(**_tool_request())
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check both."
    calls = choice.message.model_dump()["tool_calls"]
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        (IDS[0], *CALLS[0]),
        (IDS[1], *CALLS[1]),
    ]
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", c["id"]) for c in calls)
    assert calls[0]["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    assert "extra_content" not in calls[1]
    assert gemini.rec.last()["body"]["tools"] == [{"functionDeclarations": DECLARATIONS}]

    history = [
        *user("Weather and time in SF?"),
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "09:30"},  # answered out of order
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": '{"temp": 18}'},
    ]
    second = client.chat.completions.create(model="gemini-tools", messages=history, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert (
        second.choices[0].message.content == 'results: get_time={"output":"09:30"} get_weather={"output":{"temp":18}}'
    )
    assert gemini.rec.last()["body"]["contents"] == [
        {"role": "user", "parts": [{"text": "Weather and time in SF?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Let me check both."},
                {"functionCall": {"name": "get_weather", "args": CALLS[0][1]}, "thoughtSignature": SIGNATURE},
                {"functionCall": {"name": "get_time", "args": CALLS[1][1]}},
            ],
        },
        {
            "role": "user",  # both results in one turn, each named by the call it answers
            "parts": [
                {"functionResponse": {"name": "get_time", "response": {"output": "09:30"}}},
                {"functionResponse": {"name": "get_weather", "response": {"output": {"temp": 18}}}},
            ],
        },
    ]


def test_tool_calls_stream_whole_per_call_with_stable_ids(gemini: Stack) -> None:
    r, events = gemini.stream_events(_tool_request())
    assert r.status_code == 200
    pieces = [d["tool_calls"] for d in deltas(events) if d.get("tool_calls")]
    assert pieces == [
        [
            {
                "index": 0,
                "id": IDS[0],
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": json.dumps(CALLS[0][1], ensure_ascii=False, separators=(",", ":")),
                },
                "extra_content": {"google": {"thought_signature": SIGNATURE}},
            }
        ],
        [
            {
                "index": 1,
                "id": IDS[1],
                "type": "function",
                "function": {"name": "get_time", "arguments": json.dumps(CALLS[1][1], separators=(",", ":"))},
            }
        ],
    ]
    assert text_of(events) == "Let me check both."
    assert finish_reasons(events) == ["tool_calls"]


def test_sdk_stream_tool_round_trip(gemini: Stack) -> None:
    client = gemini.openai()
    calls: dict[int, dict] = {}
    for chunk in client.chat.completions.create(**_tool_request(), stream=True):
        for part in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += part.id or ""
            call["name"] += part.function.name or ""
            call["arguments"] += part.function.arguments or ""
    assert [c["id"] for _, c in sorted(calls.items())] == IDS
    history = [
        *user("Weather and time in SF?"),
        {
            "role": "assistant",
            "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for _, c in sorted(calls.items())
            ],
        },
        *({"role": "tool", "tool_call_id": c["id"], "content": f"ok {n}"} for n, c in sorted(calls.items())),
    ]
    stream = client.chat.completions.create(model="gemini-tools", messages=history, tools=TOOLS, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == 'results: get_weather={"output":"ok 0"} get_time={"output":"ok 1"}'
    # This client dropped the signature: the first call carries Google's placeholder instead.
    model_turn = gemini.rec.last()["body"]["contents"][1]
    assert [p.get("thoughtSignature") for p in model_turn["parts"]] == [SKIP_SIGNATURE, None]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"functionCallingConfig": {"mode": "AUTO"}}),
        ("none", {"functionCallingConfig": {"mode": "NONE"}}),
        ("required", {"functionCallingConfig": {"mode": "ANY"}}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
        ),
        (None, None),
    ],
)
def test_tool_choice(gemini: Stack, choice: Any, expected: Any) -> None:
    body = _tool_request()
    if choice is not None:
        body["tool_choice"] = choice
    assert gemini.post(body).status_code == 200
    assert gemini.rec.last()["body"].get("toolConfig") == expected


def test_tool_schemas_are_rewritten_to_what_gemini_accepts(gemini: Stack) -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time", "default": "now", "examples": ["2024-01-01T00:00:00Z"]},
            "where": {"$ref": "#/$defs/Place"},
            "tags": {"type": ["array", "null"], "items": {"type": "string", "format": "hostname"}},
            "mode": {"anyOf": [{"type": "string", "enum": ["fast", "slow"]}, {"type": "null"}]},
            "level": {"type": "integer", "enum": [1, 2, 3]},
            "kind": {"const": "trip"},
        },
        "required": ["when", "where", "ghost"],
        "additionalProperties": False,
        "$defs": {
            "Place": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "near": {"$ref": "#/$defs/Place"}},
                "required": ["city"],
                "additionalProperties": False,
            }
        },
    }
    tool = {"type": "function", "function": {"name": "plan", "parameters": schema, "strict": True}}
    assert gemini.post({"model": "flash", "messages": user("x"), "tools": [tool]}).status_code == 200
    assert gemini.rec.last()["body"]["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "plan",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {
                            "when": {"type": "STRING", "format": "date-time"},
                            "where": {
                                "type": "OBJECT",
                                "properties": {"city": {"type": "STRING"}, "near": {"type": "OBJECT"}},
                                "required": ["city"],
                            },
                            "tags": {"type": "ARRAY", "nullable": True, "items": {"type": "STRING"}},
                            "mode": {"type": "STRING", "enum": ["fast", "slow"], "nullable": True},
                            "level": {"type": "INTEGER", "description": "One of: 1, 2, 3."},
                            "kind": {"type": "STRING", "enum": ["trip"]},
                        },
                        "required": ["when", "where"],
                    },
                }
            ]
        }
    ]


def test_tool_result_for_an_unknown_call_is_a_400_and_nothing_is_sent(gemini: Stack) -> None:
    before = len(gemini.rec.requests)
    history = [*user("x"), {"role": "tool", "tool_call_id": "call_nowhere", "content": "1"}]
    r = gemini.post({"model": "gemini-tools", "messages": history, "tools": TOOLS})
    assert r.status_code == 400
    assert error_of(r) == {
        "message": "'messages[1].tool_call_id' does not match a tool call of an earlier assistant message.",
        "type": "invalid_request_error",
        "param": "messages[1].tool_call_id",
        "code": None,
    }
    assert len(gemini.rec.requests) == before
