"""A client that goes away is an ordinary end of a request: one quiet log line, no traceback."""

from __future__ import annotations

import json
import logging
import secrets
import socket

import pytest

from tests.polling import wait_for


def _raw_request(parley, rid: str, body: bytes, length: int) -> socket.socket:
    port = int(parley.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {parley.key}\r\nx-request-id: {rid}\r\ncontent-length: {length}\r\n\r\n".encode()
        + body
    )
    return sock


def _records(caplog: pytest.LogCaptureFixture, rid: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "request_id", None) == rid]


def _named(caplog: pytest.LogCaptureFixture, rid: str, message: str) -> list[logging.LogRecord]:
    return [r for r in _records(caplog, rid) if r.getMessage() == message]


def _server_answers(parley) -> None:
    with parley.client() as http:
        r = http.post(
            "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "still up"}]}
        )
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: still up"


def test_a_client_that_leaves_mid_stream_is_logged_once_without_a_traceback(parley, caplog):
    rid = "leaves-" + secrets.token_hex(4)
    body = json.dumps({"model": "endless", "stream": True, "messages": [{"role": "user", "content": "x"}]}).encode()
    with caplog.at_level(logging.INFO, logger="parley"):
        sock = _raw_request(parley, rid, body, len(body))
        got = b""
        while got.count(b"data: ") < 3:
            got += sock.recv(65536)
        sock.close()
        left = wait_for(lambda: _named(caplog, rid, "client left mid-stream"), "the log line")
        _server_answers(parley)  # (and the stream's clean-up has had its turn)
    assert len(left) == 1 and left[0].levelno == logging.INFO and left[0].exc_info is None
    assert [r.getMessage() for r in _records(caplog, rid) if r.levelno >= logging.WARNING or r.exc_info] == []


def test_a_client_that_leaves_before_its_body_arrived_is_logged_once_without_a_traceback(parley, caplog):
    rid = "leaves-early-" + secrets.token_hex(4)
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}).encode()
    with caplog.at_level(logging.INFO, logger="parley"):
        sock = _raw_request(parley, rid, body[:10], len(body))  # the rest never comes
        sock.close()
        left = wait_for(lambda: _records(caplog, rid), "the log line")
        _server_answers(parley)
    records = _records(caplog, rid)
    assert [r.getMessage() for r in records] == ["client left before sending the whole request"]
    assert left[0].levelno == logging.INFO and left[0].exc_info is None


def test_the_event_stream_headers_are_kept(parley):
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with parley.client() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
        text = "".join(r.iter_text())
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache" and r.headers["x-accel-buffering"] == "no"
    assert r.headers["x-request-id"]
    assert "content-length" not in r.headers
    assert text.endswith("data: [DONE]\n\n")
