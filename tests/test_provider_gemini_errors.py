"""`type: gemini` providers: the vendor's errors and faults through Parley's /v1: its 4xx and
5xx answers, Google's retry delay, a hanging vendor, an error mid-stream, and a client leaving
mid-stream.

Each test checks what the client gets (raw HTTP, whole and streamed).
"""

from __future__ import annotations

import pytest

from tests.vendor_stack import Stack, error_of, leave_mid_stream, text_of, user


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
