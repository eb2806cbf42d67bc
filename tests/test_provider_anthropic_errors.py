"""`type: anthropic` providers: the vendor's errors and faults through Parley's
/v1/chat/completions: its 4xx and 5xx answers, a hanging vendor, errors and dropped connections
mid-stream, a client leaving mid-stream, and a wrong key.

Each test checks what the client gets (official openai SDK and raw HTTP, whole and streamed)
and, where it matters, what the double received.
"""

from __future__ import annotations

import openai
import pytest

from tests.anthropic_double import Recorder, build
from tests.vendor_stack import Stack, error_of, leave_mid_stream, text_of, user, vendor_stack


def test_vendor_400_passes_its_message_as_a_400(claude: Stack) -> None:
    r = claude.post({"model": "claude-400", "messages": user("x")})
    assert r.status_code == 400
    assert error_of(r) == {
        "message": "messages.0.content: text content blocks must be non-empty",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


@pytest.mark.parametrize("model", ["claude-401", "claude-403", "claude-404"])
def test_vendor_refusing_parley_is_a_502_naming_nothing_internal(claude: Stack, model: str) -> None:
    for stream in (False, True):
        r = claude.post({"model": model, "messages": user("x"), "stream": stream})
        assert r.status_code == 502
        err = error_of(r)
        assert err["type"] == "upstream_error" and err["code"] == "upstream_error"
        assert model not in err["message"] and "x-api-key" not in err["message"] and "claude" not in err["message"]


def test_rate_limit_passes_retry_after(claude: Stack) -> None:
    for stream in (False, True):
        r = claude.post({"model": "claude-429", "messages": user("x"), "stream": stream})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "7"
        assert error_of(r)["code"] == "rate_limit_exceeded"


def test_overloaded_is_a_503_the_sdk_would_retry(claude: Stack) -> None:
    r = claude.post({"model": "claude-529", "messages": user("x")})
    assert r.status_code == 503
    assert error_of(r) == {
        "message": "The model provider is overloaded: Overloaded",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_overloaded",
    }
    with pytest.raises(openai.InternalServerError) as caught:
        claude.openai().chat.completions.create(model="claude-529", messages=user("x"))
    assert caught.value.status_code == 503


def test_vendor_500_is_a_502(claude: Stack) -> None:
    r = claude.post({"model": "claude-500", "messages": user("x")})
    assert r.status_code == 502
    assert error_of(r)["message"] == "The model provider failed (HTTP 500): Internal server error"


def test_hanging_vendor_is_a_504(claude: Stack) -> None:
    r = claude.post({"model": "claude-hang", "messages": user("x")})
    assert r.status_code == 504
    assert error_of(r)["type"] == "timeout_error"


def test_error_event_mid_stream_ends_the_stream_with_an_error_event(claude: Stack) -> None:
    r, events = claude.stream_events({"model": "claude-midstream", "messages": user("x")})
    assert r.status_code == 200
    assert text_of(events) == "echo: x"
    assert events[-1] == {
        "error": {
            "message": "The model provider is overloaded: Overloaded",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_overloaded",
        }
    }
    assert "[DONE]" not in events


def test_connection_dropped_mid_stream_ends_the_stream_with_an_error_event(claude: Stack) -> None:
    r, events = claude.stream_events({"model": "claude-drop", "messages": user("x")})
    assert r.status_code == 200
    assert text_of(events) == "echo: x"
    error = events[-1]["error"]
    assert error["message"] == "Upstream provider 'claude' dropped the connection mid-stream"
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_error")
    assert "[DONE]" not in events


def test_client_leaving_mid_stream_closes_the_vendor_stream(claude: Stack) -> None:
    assert leave_mid_stream(claude, "claude-endless") == ["cancelled"]


def test_wrong_key_is_a_502(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The vendor answers 401 to the key Parley holds: the caller sees a configuration fault."""
    rec = Recorder()
    provider = {"name": "claude", "type": "anthropic", "api_key": "sk-ant-wrong"}
    with vendor_stack(
        tmp_path_factory.mktemp("a-key"), build(rec), rec, provider, [{"name": "claude-text", "provider": "claude"}]
    ) as stack:
        r = stack.post({"model": "claude-text", "messages": user("x")})
        assert r.status_code == 502 and "sk-ant-wrong" not in r.text
        assert rec.headers[-1]["x-api-key"] == "sk-ant-wrong"
