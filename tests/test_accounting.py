"""Usage records and metrics: one row per request of every dialect with the upstream's own
counts, priced; streams cut off by a leaving client, failures and canned replies too; rows
written off the request path (a broken usage table fails no request); /metrics moves."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest

from parley.app import create_app
from tests.accounting_helpers import (
    PRICED_COST,
    accounting_server,
    new_rid,
    sample,
    scrape,
    usage_rows,
    wait_for,
    wait_rows,
)
from tests.conftest import cli_json
from tests.conftest import test_settings as make_settings
from tests.servers import ThreadedServer
from tests.upstream_double import DETAILED_USAGE, USAGE
from tests.v8_helpers import V8


@pytest.fixture(scope="module")
def acct(database_url, upstream):
    with accounting_server(database_url, upstream) as server:
        yield server


@pytest.fixture(scope="module")
def project(acct):
    made = cli_json(acct.database_url, "projects", "create", "--name", "acct", "--model", "priced", "--json")
    return {**made, "base": f"/api/project/{made['id']}/integration/api"}


@pytest.fixture(scope="module")
def app(acct):
    return cli_json(acct.database_url, "integrations", "create", "--name", "acct", "--json")


def _user_says(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _read_stream(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.read()
    return [line for line in response.iter_lines() if line.startswith("data: ")]


def _check_priced_row(row: dict[str, Any], **expected: Any) -> None:
    assert row["model"] == "priced" and row["provider"] == "up" and row["deployment"] == "up/cached-usage"
    assert row["upstream_model"] == "cached-usage"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (20, 9)
    assert (row["cached_tokens"], row["reasoning_tokens"]) == (8, 4)
    assert row["cost_usd"] == pytest.approx(PRICED_COST)
    assert row["status"] == 200 and row["error_code"] is None
    assert row["latency_ms"] > 0
    for name, value in expected.items():
        assert row[name] == value, (name, row[name], value)
    if row["streamed"]:
        assert row["ttft_ms"] is not None and 0 < row["ttft_ms"] <= row["latency_ms"]
    else:
        assert row["ttft_ms"] is None


def test_v1_whole_and_streamed_rows_match_the_upstreams_counts(acct):
    whole, streamed = new_rid(), new_rid()
    with acct.client() as http:
        r = http.post(
            "/v1/chat/completions",
            headers={"x-request-id": whole},
            json={"model": "priced", "messages": _user_says("hi")},
        )
        assert r.status_code == 200 and r.json()["usage"] == DETAILED_USAGE
        body = {"model": "priced", "messages": _user_says("hi"), "stream": True}
        with http.stream("POST", "/v1/chat/completions", headers={"x-request-id": streamed}, json=body) as r:
            _read_stream(r)
    rows = wait_rows(acct.database_url, [whole, streamed])
    for row, is_stream in zip(rows, (False, True), strict=True):
        _check_priced_row(
            row,
            caller_kind="gateway",
            dialect="openai",
            key_id=acct.extra["key_id"],
            project_id=None,
            app_id=None,
            user_id=None,
            streamed=is_stream,
        )


def test_project_whole_and_streamed_rows_match_the_upstreams_counts(acct, project):
    whole, streamed = new_rid(), new_rid()
    with acct.client(key=project["api_key"], **{"x-session-id": "usage"}) as http:
        r = http.post(
            project["base"] + "/chat/completions", headers={"x-request-id": whole}, json={"messages": _user_says("a")}
        )
        assert r.status_code == 200, r.text
        body = {"messages": _user_says("b"), "stream": True}
        with http.stream(
            "POST", project["base"] + "/chat/completions", headers={"x-request-id": streamed}, json=body
        ) as r:
            _read_stream(r)
    for row, is_stream in zip(wait_rows(acct.database_url, [whole, streamed]), (False, True), strict=True):
        _check_priced_row(
            row, caller_kind="project", dialect="project", project_id=project["id"], app_id=None, streamed=is_stream
        )
        assert row["key_id"].startswith("pkey_")


def test_v8_whole_and_streamed_rows_match_the_upstreams_counts(acct, app):
    v8 = V8(acct.url, app, user_id="counted")
    conv = v8.conversation(settings={"model": "priced"})["id"]
    whole, streamed = new_rid(), new_rid()
    r = v8.http.post(
        f"/chat/conversations/{conv}/messages", headers={"x-request-id": whole}, json={"content": "x", "stream": False}
    )
    assert r.status_code == 200 and r.json()["usage"] == DETAILED_USAGE
    with v8.http.stream(
        "POST", f"/chat/conversations/{conv}/messages", headers={"x-request-id": streamed}, json={"content": "y"}
    ) as r:
        _read_stream(r)
    for row, is_stream in zip(wait_rows(acct.database_url, [whole, streamed]), (False, True), strict=True):
        _check_priced_row(
            row,
            caller_kind="integration",
            dialect="v8",
            app_id=app["app_id"],
            user_id="counted",
            key_id=None,
            project_id=None,
            streamed=is_stream,
        )


def test_v8_titles_and_v1_embeddings_have_rows_too(acct, app):
    v8 = V8(acct.url, app, user_id="titled")
    conv = v8.conversation(settings={"model": "echo"})["id"]
    assert v8.send(conv, content="hello", stream=False).status_code == 200
    title, embedded = new_rid(), new_rid()
    r = v8.http.post(f"/chat/conversations/{conv}/generate-title", headers={"x-request-id": title})
    assert r.status_code == 200, r.text
    with acct.client() as http:
        r = http.post(
            "/v1/embeddings",
            headers={"x-request-id": embedded},
            json={"model": "text-embedding-3-small", "input": ["one", "two"]},
        )
        assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 3
    title_row, embed_row = wait_rows(acct.database_url, [title, embedded])
    assert (title_row["dialect"], title_row["app_id"], title_row["user_id"]) == ("v8", app["app_id"], "titled")
    assert (title_row["model"], title_row["upstream_model"], title_row["status"]) == ("echo", "echo", 200)
    assert (title_row["prompt_tokens"], title_row["completion_tokens"]) == (
        USAGE["prompt_tokens"],
        USAGE["completion_tokens"],
    )
    assert (embed_row["dialect"], embed_row["model"], embed_row["provider"]) == (
        "openai",
        "text-embedding-3-small",
        "up",
    )
    assert (embed_row["prompt_tokens"], embed_row["completion_tokens"], embed_row["status"]) == (3, 0, 200)


def test_a_client_that_leaves_mid_stream_leaves_its_partial_reply_and_its_usage(acct, app):
    v8 = V8(acct.url, app, user_id="leaver")
    conv = v8.conversation(settings={"model": "endless"})["id"]
    rid = new_rid()
    with v8.http.stream(
        "POST", f"/chat/conversations/{conv}/messages", headers={"x-request-id": rid}, json={"content": "go"}
    ) as r:
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("data: ")
            if seen >= 5:
                break
    (row,) = wait_rows(acct.database_url, [rid])
    assert (row["status"], row["error_code"], row["streamed"]) == (200, "client_disconnected", True)
    # The upstream never sent its usage: what came is counted here.
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] >= 4
    assert row["ttft_ms"] is not None

    def stored() -> list[dict[str, Any]] | None:
        messages = v8.messages(conv)
        return messages if len(messages) == 2 else None

    reply = wait_for(stored, "the cut-off reply")[1]
    assert reply["content"].startswith("0 1 2 3 ")
    assert reply["usage"]["completion_tokens"] == row["completion_tokens"]
    assert reply["usage"]["prompt_tokens"] == row["prompt_tokens"]


def test_failures_are_recorded_with_their_status_and_code(acct):
    failed, dropped, refused = new_rid(), new_rid(), new_rid()
    with acct.client() as http:
        r = http.post(
            "/v1/chat/completions",
            headers={"x-request-id": failed},
            json={"model": "fail-500", "messages": _user_says("x")},
        )
        assert r.status_code == 502
        body = {"model": "drop", "messages": _user_says("x"), "stream": True}
        with http.stream("POST", "/v1/chat/completions", headers={"x-request-id": dropped}, json=body) as r:
            events = _read_stream(r)
        assert '"error"' in events[-1]
        r = http.post(
            "/v1/chat/completions",
            headers={"x-request-id": refused},
            json={"model": "fail-400", "messages": _user_says("x")},
        )
        assert r.status_code == 400
    fail_row, drop_row, refused_row = wait_rows(acct.database_url, [failed, dropped, refused])
    assert (fail_row["status"], fail_row["error_code"], fail_row["provider"]) == (502, "upstream_error", "up")
    assert (drop_row["status"], drop_row["error_code"], drop_row["streamed"]) == (200, "upstream_error", True)
    assert drop_row["completion_tokens"] > 0  # "partial " came before the drop
    assert (refused_row["status"], refused_row["error_code"]) == (400, "invalid_request_error")


def test_bad_input_leaves_no_row(acct):
    """Found bad inside the turn (a session the messages add nothing to), after admission."""
    project = cli_json(acct.database_url, "projects", "create", "--name", "bad", "--model", "echo", "--json")
    url = f"/api/project/{project['id']}/integration/api/chat/completions"
    rid = new_rid()
    with acct.client(key=project["api_key"]) as http:
        r = http.post(
            url,
            headers={"x-request-id": rid},
            json={"messages": [{"role": "assistant", "content": "nothing to answer"}]},
        )
        assert r.status_code == 400
        later = new_rid()
        assert http.post(url, headers={"x-request-id": later}, json={"messages": _user_says("x")}).status_code == 200
    wait_rows(acct.database_url, [later])  # written after the bad one would have been
    assert usage_rows(acct.database_url, [rid]) == []


def test_a_canned_unmatch_reply_is_recorded_without_a_provider(acct, app):
    memory = cli_json(acct.database_url, "memories", "create", "--app-id", app["app_id"], "--name", "empty", "--json")
    canned = cli_json(
        acct.database_url,
        "projects",
        "create",
        "--name",
        "canned",
        "--memory",
        memory["id"],
        "--unmatch-message",
        "Nothing found.",
        "--json",
    )
    whole, streamed = new_rid(), new_rid()
    url = f"/api/project/{canned['id']}/integration/api/chat/completions"
    with acct.client(key=canned["api_key"]) as http:
        r = http.post(url, headers={"x-request-id": whole}, json={"messages": _user_says("anything?")})
        assert r.json()["choices"][0]["message"]["content"] == "Nothing found."
        body = {"messages": _user_says("more?"), "stream": True}
        with http.stream("POST", url, headers={"x-request-id": streamed}, json=body) as r:
            _read_stream(r)
    for row, is_stream in zip(wait_rows(acct.database_url, [whole, streamed]), (False, True), strict=True):
        assert (row["provider"], row["upstream_model"], row["status"], row["streamed"]) == (None, None, 200, is_stream)
        assert (row["prompt_tokens"], row["completion_tokens"], row["cost_usd"]) == (0, 0, 0.0)


def test_usage_cli_totals_by_every_grouping(acct, app):
    key = cli_json(acct.database_url, "keys", "create", "--name", "usage-cli", "--json")
    rids = [new_rid() for _ in range(3)]
    with acct.client(key=key["key"]) as http:
        for rid in rids[:2]:
            r = http.post(
                "/v1/chat/completions",
                headers={"x-request-id": rid},
                json={"model": "priced", "messages": _user_says("q")},
            )
            assert r.status_code == 200
        r = http.post(
            "/v1/chat/completions",
            headers={"x-request-id": rids[2]},
            json={"model": "fail-500", "messages": _user_says("q")},
        )
        assert r.status_code == 502
    wait_rows(acct.database_url, rids)
    by_key = {row["key_id"]: row for row in cli_json(acct.database_url, "usage", "--by", "key", "--json")}
    mine = by_key[key["id"]]
    assert mine == {
        "key_id": key["id"],
        "requests": 3,
        "prompt_tokens": 40,
        "completion_tokens": 18,
        "cached_tokens": 16,
        "reasoning_tokens": 8,
        "cost_usd": pytest.approx(2 * PRICED_COST),
        "errors": 1,
    }
    total = cli_json(acct.database_url, "usage", "--json")
    assert (
        len(total) == 1
        and total[0]["requests"] >= 3
        and set(total[0])
        == {
            "requests",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "cost_usd",
            "errors",
        }
    )
    by_model = {row["model"]: row for row in cli_json(acct.database_url, "usage", "--by", "model", "--json")}
    assert by_model["priced"]["requests"] >= 2 and by_model["fail-500"]["errors"] >= 1
    days = cli_json(acct.database_url, "usage", "--by", "day", "--json")
    assert days and all(len(d["day"]) == 10 for d in days) and sum(d["requests"] for d in days) == total[0]["requests"]
    users = cli_json(acct.database_url, "usage", "--by", "user", "--json")
    assert all(set(u) >= {"app_id", "user_id", "requests"} for u in users)
    assert cli_json(acct.database_url, "usage", "--by", "key", "--since", "2999-01-01", "--json") == []
    from tests.conftest import cli

    table = cli(acct.database_url, "usage", "--by", "model")
    assert table.returncode == 0 and "priced" in table.stdout and "cost_usd" in table.stdout
    assert cli(acct.database_url, "usage", "--by", "nothing").returncode != 0
    assert cli(acct.database_url, "usage", "--since", "yesterday").returncode != 0


def test_metrics_parse_and_move_when_requests_are_made(acct, app):
    before = scrape(acct.url)
    v8 = V8(acct.url, app, user_id="metered")
    conv = v8.conversation(settings={"model": "priced"})["id"]
    with acct.client() as http:
        assert (
            http.post("/v1/chat/completions", json={"model": "priced", "messages": _user_says("m")}).status_code == 200
        )
        body = {"model": "priced", "messages": _user_says("m"), "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            _read_stream(r)
        assert (
            http.post("/v1/chat/completions", json={"model": "fail-500", "messages": _user_says("m")}).status_code
            == 502
        )
    assert v8.send(conv, content="m", stream=False).status_code == 200
    assert v8.http.get(f"/chat/conversations/{conv}/messages").status_code == 200
    after = scrape(acct.url)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("parley_requests_total", dialect="openai", model="priced", status="200") == 2
    assert moved("parley_requests_total", dialect="v8", model="priced", status="200") == 1
    assert moved("parley_requests_total", dialect="openai", model="fail-500", status="502") == 1
    assert moved("parley_tokens_total", model="priced", kind="prompt") == 3 * 20
    assert moved("parley_tokens_total", model="priced", kind="cached") == 3 * 8
    assert moved("parley_tokens_total", model="priced", kind="reasoning") == 3 * 4
    assert moved("parley_request_duration_seconds_count", dialect="openai", model="priced") == 2
    assert moved("parley_time_to_first_token_seconds_count", dialect="openai", model="priced") == 1
    assert moved("parley_upstream_errors_total", provider="up") == 1
    assert sample(after, "parley_active_streams") == 0
    # HTTP metrics name the route template, never the id in the path.
    template = "/v8/chat/conversations/{conversation_id}/messages"
    assert moved("parley_http_requests_total", method="GET", route=template, status="200") == 1
    assert moved("parley_http_requests_total", method="POST", route="/v1/chat/completions", status="200") == 2
    assert not any(conv in dict(labels).get("route", "") for (_, labels) in after)
    assert ("parley_embedding_queue_depth", frozenset()) in after

    # A stream in progress is an active stream until it ends.
    idle = sample(after, "parley_active_streams")
    body = {"model": "endless", "messages": _user_says("go"), "stream": True}
    with acct.client() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
        lines = r.iter_lines()  # kept: a dropped iterator closes the response
        next(lines)
        assert sample(scrape(acct.url), "parley_active_streams") == idle + 1
    wait_for(lambda: sample(scrape(acct.url), "parley_active_streams") == idle, "the stream to end")


def test_metrics_token_guards_the_endpoint(database_url, upstream):
    settings = make_settings(database_url, upstream.url, metrics_token="s3cret-metrics")
    with ThreadedServer(create_app(settings)) as server:
        assert httpx.get(server.url + "/metrics").status_code == 401
        assert httpx.get(server.url + "/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
        scrape(server.url, authorization="Bearer s3cret-metrics")
    with ThreadedServer(create_app(make_settings(database_url, upstream.url, metrics=False))) as server:
        assert httpx.get(server.url + "/metrics").status_code == 404


def test_a_broken_usage_table_fails_no_request_and_the_dropped_rows_are_counted(tmp_path, upstream):
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'broken.db'}"
    settings = make_settings(database_url, upstream.url, usage_flush_interval=0.05)
    with ThreadedServer(create_app(settings)) as server:
        key = cli_json(database_url, "keys", "create", "--name", "broken", "--json")["key"]
        with sqlite3.connect(tmp_path / "broken.db") as raw:
            raw.execute("DROP TABLE usage_records")
        before = sample(scrape(server.url), "parley_usage_rows_dropped_total")
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
            for _ in range(3):
                r = http.post("/v1/chat/completions", json={"model": "echo", "messages": _user_says("still here")})
                assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: still here"
        wait_for(
            lambda: sample(scrape(server.url), "parley_usage_rows_dropped_total") >= before + 3,
            "the dropped rows to be counted",
        )


def test_rows_past_the_retention_period_are_deleted(tmp_path, upstream):
    from datetime import timedelta

    from parley.storage.models import now

    database_url = f"sqlite+aiosqlite:///{tmp_path / 'retention.db'}"
    cli_json(database_url, "keys", "create", "--name", "migrate-first", "--json")
    old, recent = now() - timedelta(days=40), now() - timedelta(days=10)
    with sqlite3.connect(tmp_path / "retention.db") as raw:
        for rid, at in (("old-row", old), ("recent-row", recent)):
            raw.execute(
                "INSERT INTO usage_records (created_at, request_id, caller_kind, dialect, model, prompt_tokens,"
                " completion_tokens, cached_tokens, reasoning_tokens, cost_usd, latency_ms, status, streamed)"
                " VALUES (?, ?, 'gateway', 'openai', 'echo', 1, 1, 0, 0, 0, 1, 200, 0)",
                (at.strftime("%Y-%m-%d %H:%M:%S.%f"), rid),
            )
    assert len(usage_rows(database_url, ["old-row", "recent-row"])) == 2
    settings = make_settings(database_url, upstream.url, usage_flush_interval=0.05, usage_retention_days=30)
    with ThreadedServer(create_app(settings)):
        wait_for(lambda: not usage_rows(database_url, ["old-row"]), "the old row to be deleted")
    assert [r["request_id"] for r in usage_rows(database_url, ["old-row", "recent-row"])] == ["recent-row"]


def test_tallied_metrics_expose_exactly_what_direct_updates_would():
    """The request path tallies in plain dicts and ``flush`` adds the totals to the Prometheus
    metrics (a histogram's buckets directly): the same exposition as one update per request."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from parley import metrics

    registry = CollectorRegistry()
    direct_h = Histogram("h", "h", ["route"], buckets=metrics._HTTP, registry=registry)
    direct_c = Counter("c", "c", ["method", "route", "status"], registry=registry)
    values = [0.0001, 0.005, 0.0051, 0.3, 7.0, 500.0, 0.005]
    for v in values:
        direct_h.labels("/x").observe(v)
        direct_c.labels("GET", "/x", "200").inc()
    expected = generate_latest(registry).decode().replace("h_", "parley_http_request_duration_seconds_")

    before = scrape_registry()
    for v in values:
        metrics.http_done("GET", "/tally-check", 200, v)
    metrics.flush()
    after = scrape_registry()
    for line in expected.splitlines():
        if line.startswith("parley_http_request_duration_seconds_") and 'route="/x"' in line and "_created" not in line:
            name_labels, value = line.rsplit(" ", 1)
            name_labels = name_labels.replace('route="/x"', 'route="/tally-check"')
            assert after.get(name_labels, 0.0) - before.get(name_labels, 0.0) == float(value), name_labels
    assert after['parley_http_requests_total{method="GET",route="/tally-check",status="200"}'] == len(values)


def test_tallied_model_request_metrics_expose_exactly_what_direct_updates_would():
    """``request_done`` tallies per dialect and model; ``flush`` adds each status's count, the
    duration and first-token histograms and each kind of token, as per-request updates would."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from parley import metrics
    from parley.usage.record import Tokens

    registry = CollectorRegistry()
    duration = Histogram("d", "d", ["dialect", "model"], buckets=metrics._LATENCY, registry=registry)
    first = Histogram("f", "f", ["dialect", "model"], buckets=metrics._FIRST_TOKEN, registry=registry)
    calls = [
        (200, 0.04, None, Tokens(20, 9)),
        (200, 0.05, 0.05, Tokens(3, 0, 1, 0)),
        (429, 300.0, None, Tokens()),
        (200, 1e6, 0.001, Tokens(0, 7, 0, 5)),
        (500, 0.25, 30.0, Tokens(1, 1)),
    ]
    for _, seconds, first_token, _ in calls:
        duration.labels("openai", "m").observe(seconds)
        if first_token is not None:
            first.labels("openai", "m").observe(first_token)
    expected = generate_latest(registry).decode()
    expected = expected.replace("d_", "parley_request_duration_seconds_").replace(
        "f_", "parley_time_to_first_token_seconds_"
    )

    before = scrape_registry()
    for status, seconds, first_token, tokens in calls:
        metrics.request_done("openai", "tally-model", status, seconds, first_token, tokens)
    metrics.flush()
    after = scrape_registry()

    def added(name_labels: str) -> float:
        return after.get(name_labels, 0.0) - before.get(name_labels, 0.0)

    checked = 0
    for line in expected.splitlines():
        if line.startswith("parley_") and 'model="m"' in line and "_created" not in line:
            name_labels, value = line.rsplit(" ", 1)
            assert added(name_labels.replace('model="m"', 'model="tally-model"')) == float(value), name_labels
            checked += 1
    assert checked == len(metrics._LATENCY) + len(metrics._FIRST_TOKEN) + 2 * 3  # buckets; +Inf, count, sum
    for status, n in (("200", 3), ("429", 1), ("500", 1)):
        assert added(f'parley_requests_total{{dialect="openai",model="tally-model",status="{status}"}}') == n
    for kind, n in (("prompt", 24), ("completion", 17), ("cached", 1), ("reasoning", 5)):
        assert added(f'parley_tokens_total{{kind="{kind}",model="tally-model"}}') == n


def scrape_registry() -> dict[str, float]:
    from prometheus_client import REGISTRY, generate_latest

    out = {}
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            out[name_labels] = float(value)
    return out
