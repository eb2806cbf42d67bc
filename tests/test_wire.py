"""The pure translation modules, on inputs the vendor doubles do not produce."""

from __future__ import annotations

import pytest

from parley.errors import BadRequest, UpstreamError
from parley.wire import anthropic, gemini
from parley.wire.common import parse_data_url
from parley.wire.gemini_schema import to_gemini


def test_schema_all_of_is_merged_and_one_of_becomes_any_of() -> None:
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {
                "properties": {"b": {"oneOf": [{"type": "integer"}, {"type": "string", "maxLength": 3}]}},
                "required": ["b"],
            },
        ]
    }
    assert to_gemini(schema) == {
        "type": "OBJECT",
        "properties": {
            "a": {"type": "STRING"},
            "b": {"anyOf": [{"type": "INTEGER"}, {"type": "STRING", "maxLength": 3}]},
        },
        "required": ["a", "b"],
    }


def test_schema_type_lists_and_tuple_items() -> None:
    assert to_gemini({"type": ["string", "integer", "null"]}) == {
        "anyOf": [{"type": "STRING"}, {"type": "INTEGER"}],
        "nullable": True,
    }
    assert to_gemini({"type": "array", "items": [{"type": "number", "format": "double"}]}) == {
        "type": "ARRAY",
        "items": {"type": "NUMBER", "format": "double"},
    }
    assert to_gemini({"type": "array"}) == {"type": "ARRAY", "items": {"type": "STRING"}}


def test_schema_recursive_reference_stops_at_a_plain_object() -> None:
    schema = {
        "$ref": "#/definitions/Node",
        "definitions": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/definitions/Node"}}}},
    }
    assert to_gemini(schema) == {"type": "OBJECT", "properties": {"child": {"type": "OBJECT"}}}


def test_anthropic_stream_cut_short_is_an_error() -> None:
    t = anthropic.StreamTranslator()
    t.feed({"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 3}}})
    t.feed({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    with pytest.raises(UpstreamError):
        t.end()


def test_anthropic_stream_numbers_tool_calls_apart_from_blocks() -> None:
    t = anthropic.StreamTranslator()
    t.feed({"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {}}})
    out = t.feed(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "x"}}
    )
    assert out[0]["choices"][0]["delta"] == {"thinking_blocks": [{"type": "redacted_thinking", "data": "x"}]}
    t.feed({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": "Hi"}})
    out = t.feed(
        {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t", "name": "f"}}
    )
    assert out[0]["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    out = t.feed(
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}
    )
    assert out[0]["choices"][0]["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}
    assert t.feed({"type": "some_future_event"}) == []


def test_anthropic_whole_redacted_thinking_and_usage_details() -> None:
    data = {
        "id": "msg_1",
        "model": "m",
        "content": [{"type": "redacted_thinking", "data": "opaque"}, {"type": "text", "text": "ok"}],
        "stop_reason": "model_context_window_exceeded",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    out = anthropic.from_response(data)
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["choices"][0]["message"]["thinking_blocks"] == [{"type": "redacted_thinking", "data": "opaque"}]
    assert "reasoning_content" not in out["choices"][0]["message"]


def test_anthropic_thinking_passes_through_and_function_role_is_refused() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "adaptive"}}
    assert anthropic.to_request(body)["thinking"] == {"type": "adaptive"}
    with pytest.raises(BadRequest):
        anthropic.to_request({"model": "m", "messages": [{"role": "function", "name": "f", "content": "1"}]})


def test_gemini_keeps_its_own_call_ids_and_a_stream_cut_short_is_an_error() -> None:
    t = gemini.StreamTranslator("m")
    part = {"functionCall": {"id": "fc-7", "name": "f", "args": {"a": 1}}}
    out = t.feed({"candidates": [{"content": {"parts": [part], "role": "model"}}]})
    assert out[-1]["choices"][0]["delta"]["tool_calls"][0]["id"] == "fc-7"
    with pytest.raises(UpstreamError):
        t.end()


def test_gemini_errors_wrapped_in_a_list() -> None:
    body = [{"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}]
    assert gemini.error_status(body) == 503 and gemini.error_message(body) == "busy"


def test_percent_encoded_data_url() -> None:
    assert parse_data_url("data:text/plain,hi%20there", "p") == ("text/plain", "aGkgdGhlcmU=")
    with pytest.raises(BadRequest):
        parse_data_url("data:image/png;base64", "p")


def test_a_whole_answer_without_a_vendor_id_gets_one() -> None:
    out = gemini.from_response({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]}, "m")
    assert out["id"].startswith("chatcmpl-") and len(out["id"]) > len("chatcmpl-")


def test_anthropic_stream_usage_rides_on_the_finish_chunk() -> None:
    t = anthropic.StreamTranslator()
    t.feed({"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 3}}})
    t.feed({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    t.feed({"type": "content_block_stop", "index": 0})
    (finish,) = t.feed({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}})
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert (finish["usage"]["prompt_tokens"], finish["usage"]["completion_tokens"]) == (3, 5)
    assert t.feed({"type": "message_stop"}) == [] and t.done  # nothing new to say
    # usage that changes after the finish (no known upstream does) still gets its own chunk
    t = anthropic.StreamTranslator()
    t.feed({"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 3}}})
    t.feed({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}})
    t.feed({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 6}})
    (late,) = t.end()
    assert late["choices"] == [] and late["usage"]["completion_tokens"] == 6


def test_gemini_stream_usage_rides_on_the_finish_chunk() -> None:
    def part(text: str, finish: str | None = None, prompt: int = 4, out: int = 1) -> dict:
        candidate: dict = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        meta = {"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": prompt + out}
        return {"candidates": [candidate], "usageMetadata": meta, "responseId": "r1"}

    t = gemini.StreamTranslator("m")
    t.feed(part("Hel"))
    *_, finish = t.feed(part("lo", "STOP", out=2))
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert (finish["usage"]["prompt_tokens"], finish["usage"]["completion_tokens"]) == (4, 2)
    assert t.end() == [] and t.done  # nothing new to say
    # usage that comes after the finish still gets its own chunk
    t = gemini.StreamTranslator("m")
    t.feed(part("Hi", "STOP", out=1))
    t.feed(part("", out=3))
    (late,) = t.end()
    assert late["choices"] == [] and late["usage"]["completion_tokens"] == 3
