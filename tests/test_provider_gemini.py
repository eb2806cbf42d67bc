"""`type: gemini` providers: Parley's /v1 in front of a Gemini API double: text and system
prompts, generation settings, images, stop reasons, thinking and usage, response_format, and
embeddings. Tool calls are in test_provider_gemini_tools.py, the vendor's errors and faults in
test_provider_gemini_errors.py.

Each test checks what the client gets (official openai SDK and raw HTTP, whole and streamed)
and what the double received: the exact generateContent request Parley translated.

Images at http(s) URLs are fetched by Parley (Gemini takes only inline bytes) through the
SSRF-safe fetcher, which refuses loopback addresses. One test shows that refusal with the real
fetcher; the tests of a successful fetch swap in a fetcher that may reach the local image
server, and check it was asked for the right URL and limit.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from parley.providers import media
from tests.gemini_double import API_KEY, CALLS, PIXEL
from tests.vendor_stack import Stack, deltas, error_of, finish_reasons, text_of, user


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
