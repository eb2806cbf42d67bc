"""/v1 bad input and upstream faults: each a clear error in OpenAI's envelope, server still serving."""

from __future__ import annotations

import json
import socket
import time

import httpx
import openai
import pytest

from tests.conftest import cli, cli_json
from tests.polling import wait_for


def post(parley, body, **kw):
    with parley.client() as http:
        return http.post("/v1/chat/completions", json=body, **kw)


def error_of(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def test_malformed_json(parley):
    with parley.client() as http:
        r = http.post(
            "/v1/chat/completions",
            content=b'{"model": "gpt-4o-mini", "messages": [',
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 400
    assert error_of(r)["code"] == "invalid_json"


def test_missing_messages_names_the_field(parley):
    r = post(parley, {"model": "gpt-4o-mini"})
    assert r.status_code == 400
    assert error_of(r) == {
        "message": "Missing required parameter: 'messages'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "missing_required_parameter",
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-4o-mini", "messages": "hi"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        ({"model": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
            "tools[0].function",
        ),
    ],
)
def test_wrong_types_name_the_field(parley, body, param):
    r = post(parley, body)
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == param
    assert param in error_of(r)["message"]


def test_unknown_model_is_404_model_not_found(parley):
    with pytest.raises(openai.NotFoundError) as info:
        openai.OpenAI(base_url=parley.url + "/v1", api_key=parley.key, max_retries=0).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.code == "model_not_found"


def test_missing_and_wrong_key_are_401(parley):
    with parley.client(key="") as http:
        r = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
    assert r.status_code == 401 and error_of(r)["type"] == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=parley.url + "/v1", api_key="sk-wrong", max_retries=0).models.list()


def test_revoked_key_is_refused(parley):
    made = cli_json(parley.database_url, "keys", "create", "--name", "short-lived", "--json")
    with parley.client(key=made["key"]) as http:
        assert http.get("/v1/models").status_code == 200
        listed = cli_json(parley.database_url, "keys", "list", "--json")
        row = next(k for k in listed if k["id"] == made["id"])
        assert row["revoked"] is False and made["key"] not in json.dumps(listed)  # only a prefix is listed
        assert cli(parley.database_url, "keys", "revoke", made["id"]).returncode == 0
        r = http.get("/v1/models")
    assert r.status_code == 401 and error_of(r)["code"] == "invalid_api_key"
    assert cli(parley.database_url, "keys", "revoke", "key_missing").returncode == 1


def test_oversize_body_is_413(parley):
    r = post(parley, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 300_000}]})
    assert r.status_code == 413
    assert error_of(r)["code"] == "payload_too_large"


def test_oversize_chunked_body_is_413(parley):
    def chunks():
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"x" * 10_000
        yield b'"}]}'

    with parley.client() as http:
        r = http.post("/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_upstream_500_is_502(parley):
    r = post(parley, {"model": "fail-500", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 502
    err = error_of(r)
    assert err["code"] == "upstream_error" and "upstream exploded" in err["message"]
    r = post(parley, {"model": "fail-500", "messages": [{"role": "user", "content": "x"}], "stream": True})
    assert r.status_code == 502  # refused before any byte: a real status, not a 200 stream


def test_upstream_400_is_the_clients_fault(parley):
    r = post(parley, {"model": "fail-400", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and "context_length_exceeded" in error_of(r)["message"]


def test_unreachable_upstream_is_502(parley):
    r = post(parley, {"model": "unreachable", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 502 and "unreachable" in error_of(r)["message"]


def test_upstream_that_never_answers_is_504(parley):
    started = time.monotonic()
    r = post(parley, {"model": "hang", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 504 and error_of(r)["code"] == "upstream_timeout"
    assert time.monotonic() - started < 10


def test_upstream_that_stalls_mid_body_is_504(parley):
    # Its head came at once: the total timeout (1 s for this model's provider) ends the wait.
    r = post(parley, {"model": "stalled-body", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 504
    err = error_of(r)
    assert err["code"] == "upstream_timeout"
    assert err["message"] == "Upstream provider 'up-short' did not finish within 1s"


def sse_lines(parley, body) -> list[str]:
    with parley.client() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return [line for line in r.iter_lines() if line]


def test_silent_stream_times_out_with_an_sse_error_and_a_clean_end(parley):
    lines = sse_lines(
        parley, {"model": "silent-stream", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    )
    assert ": ping" in lines  # keep-alives went out during the silence
    last = json.loads(lines[-1].removeprefix("data: "))
    assert last["error"]["code"] == "upstream_timeout" and "idle" in last["error"]["message"]
    assert "data: [DONE]" not in lines


def test_total_timeout_fires_on_a_steady_trickle(parley):
    lines = sse_lines(
        parley, {"model": "endless-short", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    )
    last = json.loads(lines[-1].removeprefix("data: "))
    assert "total" in last["error"]["message"]
    assert sum(1 for line in lines if line.startswith('data: {"id"')) > 3  # it did stream until then


def test_keepalive_pings_during_slow_gaps_and_stream_completes(parley):
    lines = sse_lines(parley, {"model": "slow-stream", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert lines.count(": ping") >= 4
    assert lines[-1] == "data: [DONE]"


def test_connection_dropped_mid_stream_gives_sse_error(parley):
    with pytest.raises(openai.APIError) as info:
        for _ in openai.OpenAI(base_url=parley.url + "/v1", api_key=parley.key, max_retries=0).chat.completions.create(
            model="drop", stream=True, messages=[{"role": "user", "content": "x"}]
        ):
            pass
    assert "dropped the connection" in str(info.value)
    assert (
        post(parley, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "still up"}]}).status_code == 200
    )


def test_client_disconnect_cancels_the_upstream_at_once(parley):
    rec = parley.upstream.rec
    before = len(rec.stream_ends)
    port = int(parley.url.rsplit(":", 1)[1])
    body = json.dumps({"model": "endless", "stream": True, "messages": [{"role": "user", "content": "x"}]}).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {parley.key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    got = b""
    while got.count(b"data: ") < 3:
        got += sock.recv(65536)
    sock.close()
    closed_at = time.monotonic()
    wait_for(
        lambda: any(e["model"] == "endless" for e in rec.stream_ends[before:]),
        "the upstream stream's end",
        30,
        seen=lambda: rec.stream_ends[before:],
    )
    ends = [e for e in rec.stream_ends[before:] if e["model"] == "endless"]
    assert ends and ends[0]["reason"] == "cancelled"
    # The upstream heard of it at once, not when its stream would have ended (after 500 s); the
    # bound is wide so that a busy machine never fails it.
    assert ends[0]["at"] - closed_at < 5


def test_server_keeps_serving_after_faults(parley):
    r = post(parley, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "alive"}]})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: alive"


def test_unknown_route_uses_the_envelope(parley):
    with parley.client() as http:
        r = http.get("/v1/nothing-here")
    assert r.status_code == 404 and error_of(r)["type"] == "invalid_request_error"
