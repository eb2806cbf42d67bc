"""A cookie an upstream sets never travels with a later request.

Parley calls each upstream through one shared HTTP session; were its cookies kept, a
``Set-Cookie`` answered to one caller's request would go out with every other caller's.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parley.app import create_app
from tests import conftest
from tests.conftest import cli_json
from tests.servers import ThreadedServer
from tests.test_upstream_keepalive import COMPLETION


def cookie_setting_upstream(seen: list[str | None]) -> Starlette:
    async def completions(request: Request) -> Response:
        seen.append(request.headers.get("cookie"))
        headers = {"set-cookie": "upstream_session=caller-one; Path=/; HttpOnly"}
        return Response(COMPLETION, media_type="application/json", headers=headers)

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


def by_name(url: str) -> str:
    return url.replace("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def stack(database_url: str) -> Iterator[tuple[str, str, list[str | None]]]:
    seen: list[str | None] = []
    with ThreadedServer(cookie_setting_upstream(seen)) as upstream:
        settings = conftest.test_settings(
            database_url,
            upstream.url,
            # By name: a cookie jar keeps no cookies from an IP address, so 127.0.0.1 would prove nothing.
            providers=[{"name": "cookies", "type": "openai", "base_url": by_name(upstream.url) + "/v1"}],
            models=[{"name": "cookies", "provider": "cookies"}],
            default_model="cookies",
        )
        with ThreadedServer(create_app(settings)) as server:
            key = cli_json(database_url, "keys", "create", "--name", "cookies", "--json")["key"]
            yield server.url, key, seen


def test_an_upstream_cookie_is_not_sent_back(stack):
    url, key, seen = stack
    body = {"model": "cookies", "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        answers = [http.post("/v1/chat/completions", json=body) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200], answers[-1].text
    assert "set-cookie" not in answers[0].headers  # nor is it handed to the caller
    assert seen == [None, None, None]
