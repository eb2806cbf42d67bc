"""`type: anthropic` providers: Parley's /v1/chat/completions in front of an Anthropic double:
text and system prompts, request parameters, images and files, stop reasons, thinking and its
usage, response_format. Tool calls are in test_provider_anthropic_tools.py, the vendor's errors
and faults in test_provider_anthropic_errors.py.

Each test checks what the client gets (official openai SDK and raw HTTP, whole and streamed)
and what the double received: the exact Messages API request Parley translated.
"""

from __future__ import annotations

import httpx
import pytest

from tests.anthropic_double import API_KEY, SIGNATURE, TOOL_USES
from tests.anthropic_helpers import TOOLS
from tests.vendor_stack import Stack, deltas, error_of, finish_reasons, text_of, user

USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 17,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


# ---------------------------------------------------------------- plain text, system prompt


def test_whole_text_with_system_prompts(claude: Stack) -> None:
    r = claude.post(
        {
            "model": "sonnet",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
                {"role": "user", "content": "Hello"},
            ],
        }
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "sonnet"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo: Hello", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == USAGE
    assert claude.rec.last() == {
        "model": "claude-text",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "system": "Be brief.\n\nAnswer in English.",
        "max_tokens": 4096,
    }
    headers = claude.rec.headers[-1]
    assert headers["x-api-key"] == API_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers


def test_sdk_streams_text_and_usage(claude: Stack) -> None:
    stream = claude.openai().chat.completions.create(
        model="sonnet",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Stream me"}],
        stream=True,
        stream_options={"include_usage": True},
        max_completion_tokens=300,
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        user="user-42",
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: Stream me"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump(exclude_none=True) == {
        **USAGE,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert claude.rec.last() == {
        "model": "claude-text",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Stream me"}]}],
        "system": "Be brief.",
        "max_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        "stream": True,
    }


def test_raw_stream_is_openai_shaped(claude: Stack) -> None:
    r, events = claude.stream_events({"model": "sonnet", "messages": user("Hi there")})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "sonnet" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    # Each text_delta became its own chunk, as it arrived.
    assert [d["content"] for d in deltas(chunks)[1:] if d.get("content")] == ["echo:", " Hi t", "here"]
    assert finish_reasons(chunks) == ["stop"]


def test_stream_split_anywhere_with_crlf_line_ends_reads_the_same(claude: Stack) -> None:
    _, whole = claude.stream_events({"model": "claude-text", "messages": user("Hi there")})
    r, split = claude.stream_events({"model": "claude-split", "messages": user("Hi there")})
    assert r.status_code == 200 and split[-1] == "[DONE]"
    assert deltas(split) == deltas(whole) and finish_reasons(split) == ["stop"]
    assert [c["id"] for c in split[:-1]] == [c["id"] for c in whole[:-1]]


def test_temperature_above_anthropics_range_is_capped(claude: Stack) -> None:
    r = claude.post({"model": "sonnet", "messages": user("x"), "temperature": 1.7})
    assert r.status_code == 200
    assert claude.rec.last()["temperature"] == 1.0


def test_n_above_one_is_refused_before_the_vendor(claude: Stack) -> None:
    before = len(claude.rec.requests)
    r = claude.post({"model": "sonnet", "messages": user("x"), "n": 2})
    assert r.status_code == 400 and error_of(r)["param"] == "n"
    assert len(claude.rec.requests) == before


# ---------------------------------------------------------------- images and files


def test_images_data_url_as_base64_and_http_url_as_url_source(claude: Stack) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    r = claude.post({"model": "sonnet", "messages": [{"role": "user", "content": content}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == (
        "echo: Compare [image base64 image/png] [image url https://example.com/cat.jpg]"
    )
    assert claude.rec.last()["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_pdf_file_part_becomes_a_document_block(claude: Stack) -> None:
    part = {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}}
    r = claude.post({"model": "sonnet", "messages": [{"role": "user", "content": [part]}]})
    assert r.status_code == 200, r.text
    assert claude.rec.last()["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
            "title": "report.pdf",
        }
    ]


def test_audio_is_refused_with_a_400(claude: Stack) -> None:
    part = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    r = claude.post({"model": "sonnet", "messages": [{"role": "user", "content": [part]}]})
    assert r.status_code == 400
    assert error_of(r)["param"] == "messages[0].content[0]"


# ---------------------------------------------------------------- stop reasons


@pytest.mark.parametrize(
    ("model", "reason"),
    [("claude-max-tokens", "length"), ("claude-stop-sequence", "stop"), ("claude-refusal", "content_filter")],
)
def test_stop_reasons(claude: Stack, model: str, reason: str) -> None:
    r = claude.post({"model": model, "messages": user("x")})
    assert r.json()["choices"][0]["finish_reason"] == reason
    _, events = claude.stream_events({"model": model, "messages": user("x")})
    assert finish_reasons(events) == [reason]


# ---------------------------------------------------------------- thinking, cached and reasoning usage


THINKING_USAGE = {
    "prompt_tokens": 125,  # input 20 + cache read 100 + cache write 5
    "completion_tokens": 17,
    "total_tokens": 142,
    "prompt_tokens_details": {"cached_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 9},
}


def test_thinking_whole(claude: Stack) -> None:
    r = claude.post({"model": "claude-thinking", "messages": user("Hi"), "reasoning_effort": "low"})
    message = r.json()["choices"][0]["message"]
    assert message["content"] == "echo: Hi"
    assert message["reasoning_content"] == "The user wants an echo. Easy."
    assert message["thinking_blocks"] == [
        {"type": "thinking", "thinking": "The user wants an echo. Easy.", "signature": SIGNATURE}
    ]
    assert r.json()["usage"] == THINKING_USAGE
    sent = claude.rec.last()
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["max_tokens"] == 4096 + 1024


def test_thinking_streamed_with_signature_and_usage(claude: Stack) -> None:
    body = {"model": "claude-thinking", "messages": user("Hi"), "stream_options": {"include_usage": True}}
    _, events = claude.stream_events(body)
    assert text_of(events, "reasoning_content") == "The user wants an echo. Easy."
    assert text_of(events) == "echo: Hi"
    blocks = [b for d in deltas(events) for b in d.get("thinking_blocks") or ()]
    assert blocks == [{"type": "thinking", "thinking": "The user wants an echo. Easy.", "signature": SIGNATURE}]
    assert events[-2]["choices"] == [] and events[-2]["usage"] == THINKING_USAGE


def test_thinking_blocks_go_back_with_tool_results(claude: Stack) -> None:
    block = {"type": "thinking", "thinking": "Need the time.", "signature": SIGNATURE}
    history = [
        *user("Time?"),
        {
            "role": "assistant",
            "content": None,
            "thinking_blocks": [block],
            "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "09:30"},
    ]
    r = claude.post({"model": "claude-tools", "messages": history, "tools": TOOLS, "reasoning_effort": "medium"})
    assert r.status_code == 200, r.text
    sent = claude.rec.last()
    assert sent["messages"][1]["content"][0] == block
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    # Without the blocks (a client that keeps only OpenAI's fields) thinking is left off.
    del history[1]["thinking_blocks"]
    r = claude.post({"model": "claude-tools", "messages": history, "tools": TOOLS, "reasoning_effort": "medium"})
    assert r.status_code == 200, r.text
    assert "thinking" not in claude.rec.last()


def test_reasoning_effort_needs_room(claude: Stack) -> None:
    before = len(claude.rec.requests)
    r = claude.post({"model": "sonnet", "messages": user("x"), "reasoning_effort": "high", "max_tokens": 800})
    assert r.status_code == 400 and error_of(r)["param"] == "max_completion_tokens"
    assert len(claude.rec.requests) == before


# ---------------------------------------------------------------- response_format


def test_response_format(claude: Stack) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    assert claude.post({"model": "sonnet", "messages": user("x"), "response_format": fmt}).status_code == 200
    assert claude.rec.last()["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    body = {"model": "sonnet", "messages": [{"role": "system", "content": "S"}, *user("x")]}
    assert claude.post({**body, "response_format": {"type": "json_object"}}).status_code == 200
    assert claude.rec.last()["system"] == "S\n\nRespond with one valid JSON object and nothing else."


# ---------------------------------------------------------------- raw HTTP, and the double itself


def test_raw_http_sees_the_same_as_the_sdk(claude: Stack) -> None:
    with httpx.Client(base_url=claude.url, timeout=30) as http:
        r = http.post(
            "/v1/chat/completions",
            headers={"x-api-key": claude.key},
            json={"model": "sonnet", "messages": user("via x-api-key")},
        )
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "echo: via x-api-key"


def test_the_double_speaks_what_anthropics_sdk_reads(claude: Stack) -> None:
    """The official SDK, pointed at the double, parses its answers and events: the double's wire
    format is Anthropic's, so what Parley is tested against is."""
    import anthropic

    client = anthropic.Anthropic(base_url=claude.double_url, api_key=API_KEY, max_retries=0)
    message = client.messages.create(
        model="claude-thinking", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    )
    assert [b.type for b in message.content] == ["thinking", "text"] and message.usage.cache_read_input_tokens == 100
    with client.messages.stream(
        model="claude-tools", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert [(b.id, b.name, b.input) for b in final.content if b.type == "tool_use"] == [tuple(t) for t in TOOL_USES]
    assert final.stop_reason == "tool_use"
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="claude-529", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 529 and caught.value.body["error"]["type"] == "overloaded_error"
