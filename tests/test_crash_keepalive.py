"""A request that crashes the handler gets a complete 500 in its dialect's shape, and the kept-alive
connection it came on goes on serving: a client's next pooled request must not meet a closed
socket (ECONNRESET)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi import Request

from parley.app import create_app
from tests.conftest import test_settings as settings_for
from tests.servers import ThreadedServer


@pytest.fixture(scope="module")
def crashing(upstream, tmp_path_factory) -> Iterator[str]:
    """Parley with test-only routes: some that fail as a bug would, and one that says which client
    port (so which connection) a request came on."""
    database = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('crash') / 'parley.db'}"
    app = create_app(settings_for(database, upstream.url))

    async def crash() -> None:
        raise RuntimeError("a bug")

    for prefix in ("/v1", "/v8", "/api/project/p/integration/api"):
        app.add_api_route(prefix + "/test-crash", crash, methods=["GET", "POST"])

    @app.get("/test-peer")
    async def peer(request: Request) -> dict[str, int]:
        assert request.client is not None
        return {"port": request.client.port}

    with ThreadedServer(app) as server:
        yield server.url


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v8/test-crash", {"error": "The server had an error while processing your request."}),
        (
            "/v1/test-crash",
            {
                "error": {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
        ),
        (
            "/api/project/p/integration/api/test-crash",
            {
                "error": {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
        ),
    ],
)
def test_a_crash_answers_and_keeps_the_connection(crashing, path, body):
    with httpx.Client(base_url=crashing, timeout=30) as http:
        port = http.get("/test-peer").json()["port"]
        for method in ("GET", "POST"):
            r = http.request(method, path, json={"x": 1} if method == "POST" else None)
            # The message names the request (as OpenAI's do), by the ID the response carries.
            rid = r.headers["x-request-id"]
            named = json.loads(json.dumps(body).replace("request.", f"request. (request ID {rid})"))
            assert (r.status_code, r.json()) == (500, named)
            assert r.headers.get("connection", "").lower() != "close"
            # The same connection serves the next request.
            assert http.get("/test-peer").json()["port"] == port


def test_refusals_before_any_route_keep_the_connection(crashing):
    with httpx.Client(base_url=crashing, timeout=30) as http:
        port = http.get("/test-peer").json()["port"]
        r = http.post("/v8/chat/conversations/a%00b", json={"title": "x"})
        assert r.status_code == 400
        assert http.get("/test-peer").json()["port"] == port
