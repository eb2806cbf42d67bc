"""Browser apps on other origins: preflights and actual calls (whole and streamed) over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from parley.app import create_app
from tests import conftest
from tests.conftest import Upstream, cli_json
from tests.servers import ThreadedServer

APP = "https://app.example"
ASKED_HEADERS = "authorization, content-type, x-session-id, x-api-key, x-goog-api-key, anthropic-version"


def lower_set(value: str) -> set[str]:
    return {h.strip().lower() for h in value.split(",")}


class Server:
    def __init__(self, url: str, key: str, project: dict) -> None:
        self.url, self.key, self.project = url, key, project


def start(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, origins: list[str]) -> Iterator[Server]:
    database_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('cors') / 'parley.db'}"
    settings = conftest.test_settings(database_url, upstream.url, cors_origins=origins)
    with ThreadedServer(create_app(settings)) as server:
        key = cli_json(database_url, "keys", "create", "--name", "cors", "--json")["key"]
        project = cli_json(database_url, "projects", "create", "--name", "cors", "--json")
        yield Server(server.url, key, project)


@pytest.fixture(scope="module")
def listed(tmp_path_factory, upstream) -> Iterator[Server]:
    yield from start(tmp_path_factory, upstream, [APP])


@pytest.fixture(scope="module")
def anyone(tmp_path_factory, upstream) -> Iterator[Server]:
    yield from start(tmp_path_factory, upstream, ["*"])


def preflight(url: str, path: str, origin: str, method: str = "POST") -> httpx.Response:
    return httpx.options(
        url + path,
        headers={
            "origin": origin,
            "access-control-request-method": method,
            "access-control-request-headers": ASKED_HEADERS,
        },
    )


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/api/project/prj_x/integration/api/chat/completions",
        "/v8/chat/conversations/c1/messages",
        "/v8/memories/m1/contents",
    ],
)
def test_preflight_from_an_allowed_origin(listed, path):
    r = preflight(listed.url, path, APP)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == APP
    assert lower_set(ASKED_HEADERS) <= lower_set(r.headers["access-control-allow-headers"])
    assert "POST" in r.headers["access-control-allow-methods"]
    assert {"PUT", "DELETE"} <= set(
        preflight(listed.url, path, APP, "PUT").headers["access-control-allow-methods"].split(", ")
    )


def test_preflight_from_another_origin_is_refused(listed):
    r = preflight(listed.url, "/v1/chat/completions", "https://evil.example")
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers


def test_whole_cross_origin_post_exposes_the_session_and_request_id(listed):
    path = f"/api/project/{listed.project['id']}/integration/api/chat/completions"
    r = httpx.post(
        listed.url + path,
        headers={"origin": APP, "authorization": f"Bearer {listed.project['api_key']}", "x-session-id": "browser-1"},
        json={"messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-session-id"] == "browser-1"
    assert r.headers["access-control-allow-origin"] == APP
    assert {"x-session-id", "x-request-id"} <= lower_set(r.headers["access-control-expose-headers"])


def test_streamed_cross_origin_post_carries_the_headers(listed):
    with httpx.stream(
        "POST",
        listed.url + "/v1/chat/completions",
        headers={"origin": APP, "authorization": f"Bearer {listed.key}"},
        json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["access-control-allow-origin"] == APP
        assert "x-request-id" in lower_set(r.headers["access-control-expose-headers"])
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_errors_carry_the_headers_too(listed):
    r = httpx.post(listed.url + "/v1/chat/completions", headers={"origin": APP}, json={})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == APP  # so the page can read why


def test_any_origin_with_a_star(anyone):
    r = preflight(anyone.url, "/v1/embeddings", "https://whoever.example")
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    with httpx.stream(
        "POST",
        anyone.url + "/v1/chat/completions",
        headers={"origin": "https://whoever.example", "authorization": f"Bearer {anyone.key}"},
        json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    ) as r:
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        assert [line for line in r.iter_lines() if line][-1] == "data: [DONE]"


def test_off_by_default(parley):
    r = preflight(parley.url, "/v1/chat/completions", APP)
    assert not any(h.startswith("access-control-") for h in r.headers)
    with parley.client(origin=APP) as http:
        r = http.post(
            "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
        )
    assert r.status_code == 200 and not any(h.startswith("access-control-") for h in r.headers)
