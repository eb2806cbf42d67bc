"""The HTTP/1.1 protocol Parley serves with (parley.server_protocol): a response's head goes out
with its body, and nothing an HTTP client relies on changes. Raw sockets on the `parley`
server (served with that protocol), so every byte on the wire is seen."""

from __future__ import annotations

import socket
from typing import Any, cast

from parley.server_protocol import _OneWrite
from tests.conftest import Parley

DEADLINE = 30  # seconds a read may wait before the test fails instead of hanging


def _connect(parley: Parley) -> socket.socket:
    host, port = parley.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=DEADLINE)
    return sock


def _read_response(sock: socket.socket, buffered: bytes = b"", head_only: bool = False) -> tuple[bytes, bytes, bytes]:
    """(head, body, what came after) of one content-length response."""
    data = buffered
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        assert got, f"connection closed mid-head: {data!r}"
        data += got
    head, _, rest = data.partition(b"\r\n\r\n")
    if head_only:
        return head, b"", rest
    sizes = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    length = int(sizes[0].split(b":")[1])
    while len(rest) < length:
        got = sock.recv(65536)
        assert got, "connection closed mid-body"
        rest += got
    return head, rest[:length], rest[length:]


def test_keep_alive_responses_arrive_whole_one_after_another(parley: Parley) -> None:
    with _connect(parley) as sock:
        left = b""
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
            head, body, left = _read_response(sock, left)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"\r\nx-request-id: req_" in head
            assert body.startswith(b'{"status":"ok"')
        assert left == b""


def test_pipelined_requests_get_their_answers_in_order(parley: Parley) -> None:
    with _connect(parley) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\nGET /v1/models HTTP/1.1\r\nhost: t\r\n\r\n")
        head, body, left = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 OK") and body.startswith(b'{"status":"ok"')
        head, body, left = _read_response(sock, left)
        assert head.startswith(b"HTTP/1.1 401 ")  # no key: an error answer, whole too
        assert b'"error"' in body and left == b""


def test_a_head_request_gets_its_headers_though_no_body_follows(parley: Parley) -> None:
    """A head announcing a length is held for its body; HEAD has none, so the head must still go
    out when the response is complete (else the client would wait forever)."""
    with _connect(parley) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        head, _, left = _read_response(sock, head_only=True)
        assert head.startswith(b"HTTP/1.1 ") and b"\r\ncontent-length: " in head.lower()
        assert left == b""
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")  # and the connection goes on
        head, body, _ = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 OK") and body.startswith(b'{"status":"ok"')


def test_expect_100_continue_is_answered_before_the_body_is_sent(parley: Parley) -> None:
    body = b'{"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}'
    with _connect(parley) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer " + parley.key.encode() + b"\r\nexpect: 100-continue\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(65536)
            assert chunk, "closed before 100 Continue"
            got += chunk
        assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        head, answer, _ = _read_response(sock, got.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n"))
        assert head.startswith(b"HTTP/1.1 404 ")
        assert b"no-such-model" in answer


def test_connection_close_gets_the_whole_response_then_the_end(parley: Parley) -> None:
    with _connect(parley) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        head, body, left = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"\r\nconnection: close" in head
        assert body.startswith(b'{"status":"ok"')
        rest = left
        while chunk := sock.recv(65536):
            rest += chunk
        assert rest == b""


def test_a_streamed_answer_is_chunked_and_whole(parley: Parley) -> None:
    body = b'{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
    with _connect(parley) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer " + parley.key.encode() + b"\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        head, _, rest = _read_response(sock, head_only=True)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"\r\ntransfer-encoding: chunked" in head
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "closed mid-stream"
            rest += chunk
        assert b"data: [DONE]" in rest


class _Recorded:
    """A transport that records what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


def _one_write() -> tuple[_OneWrite, _Recorded]:
    raw = _Recorded()
    return _OneWrite(cast(Any, raw)), raw


SIZED_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"


def test_a_sized_head_goes_out_with_its_body_in_one_write() -> None:
    out, raw = _one_write()
    out.write(SIZED_HEAD)
    assert raw.writes == []
    out.write(b"{}")
    assert raw.writes == [SIZED_HEAD + b"{}"]
    assert out.get_write_buffer_size() == 0  # everything else is the transport's own


def test_chunked_heads_and_interim_answers_go_out_at_once() -> None:
    out, raw = _one_write()
    chunked = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    out.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    out.write(chunked)
    assert raw.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", chunked]


def test_a_held_head_is_sent_before_the_connection_closes() -> None:
    out, raw = _one_write()
    out.write(SIZED_HEAD)
    out.close()
    assert raw.writes == [SIZED_HEAD] and raw.closed
