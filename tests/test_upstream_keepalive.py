"""An upstream that closes a kept-alive connection just as Parley reuses it costs no failure.

The upstream here is a bare HTTP/1.1 server: it answers the first request of each connection
(keeping it open) and closes the connection, without a byte, on any later request: what a
server does when its idle timeout ends the connection as a request arrives on it. With no
deployment retries configured, only sending the request again on a fresh connection saves it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from parley.app import create_app
from tests import conftest
from tests.conftest import cli_json
from tests.servers import ThreadedServer, free_port

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-keepalive",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()


class OneRequestPerConnection:
    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.answered = 0
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            served = 0
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next(
                    int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length:")
                )
                reader.read(length)
                if served:
                    self.dropped += 1
                    return  # closed without an answer
                served += 1
                self.answered += 1
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(COMPLETION)}\r\n\r\n".encode()
                    + COMPLETION
                )


@pytest.fixture(scope="module")
def stack(database_url: str) -> Iterator[tuple[str, str, OneRequestPerConnection]]:
    upstream = OneRequestPerConnection()
    settings = conftest.test_settings(
        database_url,
        "http://unused",
        providers=[{"name": "closing", "type": "openai", "base_url": f"http://127.0.0.1:{upstream.port}/v1"}],
        models=[{"name": "closing", "provider": "closing"}],
        default_model="closing",
        routing={"retries": 0},
    )
    with ThreadedServer(create_app(settings)) as server:
        key = cli_json(database_url, "keys", "create", "--name", "keepalive", "--json")["key"]
        yield server.url, key, upstream
    upstream.sock.close()


def test_a_pooled_connection_the_upstream_closed_is_retried_on_a_fresh_one(stack):
    url, key, upstream = stack
    body = {"model": "closing", "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        answers = [http.post("/v1/chat/completions", json=body) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200], answers[-1].text
    assert [r.json()["choices"][0]["message"]["content"] for r in answers] == ["hi", "hi", "hi"]
    assert upstream.answered == 3 and upstream.dropped == 2  # the 2nd and 3rd each met a closed connection
