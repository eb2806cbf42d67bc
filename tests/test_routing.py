"""Routing across deployments: a failed attempt is retried on another deployment before the
client sees a byte, a deployment failing in a row cools down and is skipped, and a model's
fallbacks answer when all its deployments fail."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from parley.app import create_app
from tests import conftest
from tests.conftest import Upstream, cli_json
from tests.servers import ThreadedServer

HEAVY, LIGHT = 1e9, 1e-9  # weights that make the order certain in practice


@pytest.fixture(scope="module")
def routed(upstream: Upstream, tmp_path_factory) -> Iterator[tuple[str, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('routing') / 'parley.db'}"
    models = [
        # A dead deployment (nothing listens) ahead of a live one.
        {"name": "mixed", "provider": "nowhere", "upstream_model": "gone", "weight": HEAVY},
        {"name": "mixed", "provider": "up", "upstream_model": "echo", "weight": LIGHT},
        # A deployment that answers 500 ahead of a live one: seen by the double, so countable.
        {"name": "flaky", "provider": "up", "upstream_model": "fail-500", "weight": HEAVY},
        {"name": "flaky", "provider": "up", "upstream_model": "echo", "weight": LIGHT},
        # A stream that is accepted and then stays silent, ahead of a live one.
        {"name": "mute", "provider": "up-silent", "upstream_model": "silent-stream", "weight": HEAVY},
        {"name": "mute", "provider": "up", "upstream_model": "echo", "weight": LIGHT},
        # Every deployment fails: the fallback answers.
        {"name": "fragile", "provider": "up", "upstream_model": "fail-500", "fallbacks": ["steady"]},
        {"name": "steady", "provider": "up", "upstream_model": "echo"},
        # A client error is the caller's: never retried, never a fallback.
        {"name": "strict", "provider": "up", "upstream_model": "fail-400", "fallbacks": ["steady"]},
    ]
    routing = {"retries": 1, "allowed_fails": 1, "cooldown": 3600, "backoff": 0}
    settings = conftest.test_settings(url, upstream.url, models=models, default_model="steady", routing=routing)
    with ThreadedServer(create_app(settings)) as server:
        key = cli_json(url, "keys", "create", "--name", "routing", "--json")["key"]
        yield server.url, key


def chat(routed: tuple[str, str], model: str, stream: bool = False) -> httpx.Response:
    url, key = routed
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30)


def seen(upstream: Upstream, model: str) -> int:
    return sum(1 for r in upstream.rec.requests if r.get("model") == model)


def test_a_dead_deployment_is_retried_on_another(routed):
    r = chat(routed, "mixed")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: hi" and r.json()["model"] == "mixed"


def test_a_failing_deployment_cools_down_and_is_skipped(routed, upstream):
    before = seen(upstream, "fail-500")
    for _ in range(5):
        r = chat(routed, "flaky")
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: hi"
    # Tried once, failed once (allowed_fails: 1), then rested for the cooldown.
    assert seen(upstream, "fail-500") - before == 1


def test_a_stream_is_retried_before_its_first_byte(routed):
    r = chat(routed, "mute", stream=True)
    assert r.status_code == 200
    data = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "echo: hi "


def test_the_fallback_answers_when_every_deployment_fails(routed, upstream):
    before = seen(upstream, "fail-500")
    r = chat(routed, "fragile")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: hi"
    assert seen(upstream, "fail-500") - before == 2  # one try and one retry (retries: 1)


def test_a_callers_error_is_not_retried(routed, upstream):
    before = seen(upstream, "fail-400")
    r = chat(routed, "strict")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert seen(upstream, "fail-400") - before == 1


def test_fallbacks_must_name_another_model_of_the_same_kind(upstream, tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ValueError, match="fallback 'missing'"):
        conftest.test_settings(url, upstream.url, models=[{"name": "a", "provider": "up", "fallbacks": ["missing"]}])


def test_least_busy_orders_by_requests_in_flight():
    from parley.config import Routing, Timeouts
    from parley.providers.builtin import BuiltinProvider
    from parley.providers.deployments import Deployments
    from parley.providers.route import Route

    routes = [
        Route("m", f"u{i}", BuiltinProvider(f"p{i}"), "chat", "parley", Timeouts(), f"p{i}/u{i}") for i in range(3)
    ]
    group = Deployments("m", routes, [1.0, 1.0, 1.0], [], Routing(strategy="least-busy"))
    group.started(routes[0])
    group.started(routes[0])
    group.started(routes[2])
    assert group.order()[0] is routes[1]
    group.ended(routes[0])
    group.ended(routes[0])
    group.started(routes[1])
    assert group.order()[0] is routes[0]


def test_weights_share_first_places():
    from parley.config import Routing, Timeouts
    from parley.providers.builtin import BuiltinProvider
    from parley.providers.deployments import Deployments
    from parley.providers.route import Route

    routes = [Route("m", f"u{i}", BuiltinProvider(f"p{i}"), "chat", "parley", Timeouts(), f"d{i}") for i in range(2)]
    group = Deployments("m", routes, [3.0, 1.0], [], Routing())
    firsts = [group.order()[0] for _ in range(4000)]
    share = firsts.count(routes[0]) / len(firsts)
    assert 0.70 < share < 0.80  # 3:1 — about 75%, with room for chance (p < 1e-6 outside)
