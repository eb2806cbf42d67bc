"""`type: gemini` providers: Parley's /v1 in front of a Gemini API double.

Each test checks what the client gets (official openai SDK and raw HTTP, whole and streamed)
and what the double received: the exact generateContent request Parley translated.

Images at http(s) URLs are fetched by Parley (Gemini takes only inline bytes) through the
SSRF-safe fetcher, which refuses loopback addresses. One test shows that refusal with the real
fetcher; the tests of a successful fetch swap in a fetcher that may reach the local image
server, and check it was asked for the right URL and limit.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from parley.providers import media
from parley.wire.gemini import SKIP_SIGNATURE, tool_call_id
from tests.gemini_double import API_KEY, CALLS, PIXEL, SIGNATURE, Recorder, build
from tests.vendor_stack import Stack, deltas, error_of, finish_reasons, leave_mid_stream, text_of, vendor_stack

MODELS = [
    "gemini-text",
    "gemini-tools",
    "gemini-thinking",
    "gemini-max-tokens",
    "gemini-safety",
    "gemini-recitation",
    "gemini-blocked",
    "gemini-400",
    "gemini-badkey",
    "gemini-403",
    "gemini-404",
    "gemini-429",
    "gemini-500",
    "gemini-503",
    "gemini-midstream",
    "gemini-hang",
    "gemini-endless",
]
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


@pytest.fixture(scope="module")
def gemini(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    rec = Recorder()
    provider = {"name": "google", "type": "gemini", "api_key": API_KEY}
    models = [{"name": "flash", "provider": "google", "upstream_model": "gemini-text"}]
    models += [{"name": m, "provider": "google"} for m in MODELS]
    models += [
        {"name": "gemini-embed", "provider": "google", "kind": "embedding"},
        {"name": "gemini-embed-fail", "provider": "google", "kind": "embedding"},
    ]
    with vendor_stack(tmp_path_factory.mktemp("gemini"), build(rec), rec, provider, models) as stack:
        yield stack


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0, total: int | None = None) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if total is not None else prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


# ---------------------------------------------------------------- plain text, system prompt


def test_whole_text_with_system_prompts(gemini: Stack) -> None:
    r = gemini.post(
        {
            "model": "flash",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Answer in English."},
                {"role": "user", "content": "Hello"},
            ],
        }
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "flash" and body["object"] == "chat.completion"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo: Hello", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == usage(12, 6)
    sent = gemini.rec.last()
    assert (sent["model"], sent["method"]) == ("gemini-text", "generateContent")
    assert sent["body"] == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief.\n\nAnswer in English."}]},
    }
    assert sent["headers"]["x-goog-api-key"] == API_KEY and "authorization" not in sent["headers"]


def test_sdk_streams_text_with_generation_config(gemini: Stack) -> None:
    chunks = list(
        gemini.openai().chat.completions.create(
            model="flash",
            messages=user("Stream me"),
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=300,
            temperature=1.5,
            top_p=0.9,
            stop="END",
            seed=7,
            presence_penalty=0.5,
            frequency_penalty=0.25,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: Stream me"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump(exclude_none=True) == usage(12, 9)
    sent = gemini.rec.last()
    assert (sent["method"], sent["query"]) == ("streamGenerateContent", {"alt": "sse"})
    assert sent["body"] == {
        "contents": [{"role": "user", "parts": [{"text": "Stream me"}]}],
        "generationConfig": {
            "temperature": 1.5,
            "topP": 0.9,
            "seed": 7,
            "presencePenalty": 0.5,
            "frequencyPenalty": 0.25,
            "maxOutputTokens": 300,
            "stopSequences": ["END"],
        },
    }


def test_raw_stream_is_openai_shaped(gemini: Stack) -> None:
    r, events = gemini.stream_events({"model": "flash", "messages": user("Hi there")})
    assert r.status_code == 200
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "flash" for c in chunks)
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    # Each Gemini chunk became its own OpenAI chunk, as it arrived.
    assert [d["content"] for d in deltas(chunks)[1:] if d.get("content")] == ["echo: ", "Hi the", "re"]
    assert finish_reasons(chunks) == ["stop"]


# ---------------------------------------------------------------- tools


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


# ---------------------------------------------------------------- images


def _image_message(url: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": url}}],
        }
    ]


def test_data_url_image_goes_inline(gemini: Stack) -> None:
    b64 = base64.b64encode(PIXEL).decode()
    r = gemini.post({"model": "flash", "messages": _image_message(f"data:image/png;base64,{b64}")})
    assert r.status_code == 200, r.text
    assert gemini.rec.last()["body"]["contents"][0]["parts"] == [
        {"text": "What is it?"},
        {"inlineData": {"mimeType": "image/png", "data": b64}},
    ]


@pytest.fixture
def loopback_fetcher(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """A fetcher that may reach this machine's image server; records what it was asked."""
    asked: list[tuple[str, int]] = []

    async def fetch(url: str, max_bytes: int, seconds: float = 15.0) -> tuple[bytes, str]:
        asked.append((url, max_bytes))
        async with httpx.AsyncClient(timeout=seconds) as client:
            r = await client.get(url)
        return r.content, r.headers.get("content-type", "")

    monkeypatch.setattr(media, "fetch", fetch)
    return asked


def test_http_image_is_fetched_and_sent_inline(gemini: Stack, loopback_fetcher: list) -> None:
    url = gemini.double_url + "/files/pixel.png"
    for stream in (False, True):
        body = {"model": "flash", "messages": _image_message(url)}
        if stream:
            r, events = gemini.stream_events(body)
            assert text_of(events).startswith("echo: What is it? [inline image/png")
        else:
            r = gemini.post(body)
        assert r.status_code == 200, r.text
        assert gemini.rec.last()["body"]["contents"][0]["parts"][1] == {
            "inlineData": {"mimeType": "image/png", "data": base64.b64encode(PIXEL).decode()}
        }
    assert loopback_fetcher == [(url, media.MAX_IMAGE_BYTES)] * 2


def test_untyped_image_is_recognised_and_non_image_refused(gemini: Stack, loopback_fetcher: list) -> None:
    r = gemini.post({"model": "flash", "messages": _image_message(gemini.double_url + "/files/pixel-untyped")})
    assert r.status_code == 200
    assert gemini.rec.last()["body"]["contents"][0]["parts"][1]["inlineData"]["mimeType"] == "image/png"
    before = len(gemini.rec.requests)
    r = gemini.post({"model": "flash", "messages": _image_message(gemini.double_url + "/files/page.html")})
    assert r.status_code == 400
    assert error_of(r)["param"] == "messages[0].content[1].image_url.url"
    assert len(gemini.rec.requests) == before


def test_image_on_a_private_address_is_refused_by_the_real_fetcher(gemini: Stack) -> None:
    before, gets = len(gemini.rec.requests), len(gemini.rec.file_gets)
    r = gemini.post({"model": "flash", "messages": _image_message(gemini.double_url + "/files/pixel.png")})
    assert r.status_code == 400
    err = error_of(r)
    assert err["type"] == "invalid_request_error" and err["param"] == "messages[0].content[1].image_url.url"
    assert "private" in err["message"]
    assert len(gemini.rec.requests) == before and len(gemini.rec.file_gets) == gets


# ---------------------------------------------------------------- stop reasons, thinking, usage


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("gemini-max-tokens", "length"),
        ("gemini-safety", "content_filter"),
        ("gemini-recitation", "content_filter"),
        ("gemini-blocked", "content_filter"),
    ],
)
def test_stop_reasons(gemini: Stack, model: str, reason: str) -> None:
    r = gemini.post({"model": model, "messages": user("x")})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["finish_reason"] == reason
    _, events = gemini.stream_events({"model": model, "messages": user("x")})
    assert finish_reasons(events) == [reason]


def test_thinking_whole_with_cached_and_reasoning_usage(gemini: Stack) -> None:
    r = gemini.post({"model": "gemini-thinking", "messages": user("Hi"), "reasoning_effort": "low"})
    message = r.json()["choices"][0]["message"]
    assert message["content"] == "echo: Hi"
    assert message["reasoning_content"] == "The user wants an echo. Easy."
    # 4 chunks: candidates 12, thoughts 9, cached 8 of the 12 prompt tokens.
    assert r.json()["usage"] == usage(12, 21, cached=8, reasoning=9, total=33)
    assert gemini.rec.last()["body"]["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}
    }


def test_thinking_streamed(gemini: Stack) -> None:
    body = {"model": "gemini-thinking", "messages": user("Hi"), "stream_options": {"include_usage": True}}
    _, events = gemini.stream_events(body)
    assert [d["reasoning_content"] for d in deltas(events) if d.get("reasoning_content")] == [
        "The user wants an echo.",
        " Easy.",
    ]
    assert text_of(events) == "echo: Hi"
    assert events[-2]["choices"] == [] and events[-2]["usage"] == usage(12, 21, cached=8, reasoning=9, total=33)


def test_response_format_json_schema(gemini: Stack) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    assert gemini.post({"model": "flash", "messages": user("x"), "response_format": fmt}).status_code == 200
    assert gemini.rec.last()["body"]["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "required": ["a"]},
    }


# ---------------------------------------------------------------- errors


def test_vendor_400_passes_its_message_as_a_400(gemini: Stack) -> None:
    r = gemini.post({"model": "gemini-400", "messages": user("x")})
    assert r.status_code == 400
    assert error_of(r) == {
        "message": "* GenerateContentRequest.contents: contents is not specified",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


@pytest.mark.parametrize("model", ["gemini-badkey", "gemini-403", "gemini-404"])
def test_vendor_refusing_parley_is_a_502_naming_nothing_internal(gemini: Stack, model: str) -> None:
    for stream in (False, True):
        r = gemini.post({"model": model, "messages": user("x"), "stream": stream})
        assert r.status_code == 502
        err = error_of(r)
        assert err["type"] == "upstream_error"
        assert "gemini" not in err["message"] and "API key" not in err["message"]


def test_rate_limit_passes_googles_retry_delay_as_retry_after(gemini: Stack) -> None:
    for stream in (False, True):
        r = gemini.post({"model": "gemini-429", "messages": user("x"), "stream": stream})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "37"
        assert error_of(r)["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("gemini-500", "The model provider failed (HTTP 500): An internal error has occurred."),
        ("gemini-503", "The model provider failed (HTTP 503): The model is overloaded. Please try again later."),
    ],
)
def test_vendor_5xx_is_a_502(gemini: Stack, model: str, message: str) -> None:
    r = gemini.post({"model": model, "messages": user("x")})
    assert r.status_code == 502
    assert error_of(r)["message"] == message


def test_hanging_vendor_is_a_504(gemini: Stack) -> None:
    r = gemini.post({"model": "gemini-hang", "messages": user("x")})
    assert r.status_code == 504


def test_error_mid_stream_ends_the_stream_with_an_error_event(gemini: Stack) -> None:
    r, events = gemini.stream_events({"model": "gemini-midstream", "messages": user("x")})
    assert r.status_code == 200
    assert text_of(events) == "echo: "
    assert events[-1] == {
        "error": {
            "message": "The model provider failed (HTTP 500): An internal error has occurred.",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_error",
        }
    }


def test_client_leaving_mid_stream_closes_the_vendor_stream(gemini: Stack) -> None:
    assert leave_mid_stream(gemini, "gemini-endless") == ["cancelled"]


# ---------------------------------------------------------------- embeddings


def test_embeddings_through_v1(gemini: Stack) -> None:
    result = gemini.openai().embeddings.create(model="gemini-embed", input=["hello", "你好世界"])
    assert [d.embedding for d in result.data] == [[5.0, 1.0, 0.0], [4.0, 1.0, 0.0]]
    assert result.usage.prompt_tokens > 0
    sent = gemini.rec.last()
    assert (sent["model"], sent["method"]) == ("gemini-embed", "batchEmbedContents")
    assert sent["body"] == {
        "requests": [
            {"model": "models/gemini-embed", "content": {"parts": [{"text": "hello"}]}},
            {"model": "models/gemini-embed", "content": {"parts": [{"text": "你好世界"}]}},
        ]
    }


def test_many_embeddings_go_in_batches_of_100(gemini: Stack) -> None:
    before = len(gemini.rec.requests)
    texts = [f"text {n}" for n in range(150)]
    with gemini.client() as http:
        r = http.post("/v1/embeddings", json={"model": "gemini-embed", "input": texts})
    assert r.status_code == 200
    assert [d["embedding"][0] for d in r.json()["data"]] == [float(len(t)) for t in texts]
    sizes = [len(q["body"]["requests"]) for q in gemini.rec.requests[before:]]
    assert sizes == [100, 50]


def test_embedding_failure_is_a_502(gemini: Stack) -> None:
    with gemini.client() as http:
        r = http.post("/v1/embeddings", json={"model": "gemini-embed-fail", "input": "x"})
    assert r.status_code == 502
    assert error_of(r)["message"] == "The model provider failed (HTTP 500): embedding backend down"


def test_the_double_speaks_what_googles_sdk_reads(gemini: Stack) -> None:
    """The official google-genai SDK, pointed at the double, parses its answers and stream: the
    double's wire format is Gemini's, so what Parley is tested against is."""
    from google import genai
    from google.genai import errors, types

    client = genai.Client(
        api_key=API_KEY, http_options=types.HttpOptions(base_url=gemini.double_url, api_version="v1beta")
    )
    whole = client.models.generate_content(model="gemini-thinking", contents="Hi")
    assert whole.text == "echo: Hi" and whole.usage_metadata.thoughts_token_count == 9
    calls = [
        p.function_call
        for chunk in client.models.generate_content_stream(model="gemini-tools", contents="Hi")
        for p in chunk.candidates[0].content.parts
        if p.function_call
    ]
    assert [(c.name, c.args) for c in calls] == [tuple(c) for c in CALLS]
    with pytest.raises(errors.APIError) as caught:
        list(client.models.generate_content_stream(model="gemini-midstream", contents="Hi"))
    assert caught.value.code == 500
    result = client.models.embed_content(model="gemini-embed", contents=["hello"])
    assert result.embeddings[0].values == [5.0, 1.0, 0.0]
