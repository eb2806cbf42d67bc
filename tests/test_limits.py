"""Limits and budgets in every dialect: over a limit is a 429 with Retry-After in the dialect's
error shape; a refused request calls no upstream, stores nothing and leaves no usage row. The
CLI sets limits at creation and later, and shows them."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest

from tests.accounting_helpers import accounting_server, new_rid, usage_rows, wait_for, wait_rows
from tests.conftest import cli, cli_json
from tests.v8_helpers import V8


@pytest.fixture(scope="module")
def acct(database_url, upstream):
    with accounting_server(database_url, upstream) as server:
        yield server


def _marker() -> str:
    return "limit-" + uuid.uuid4().hex[:12]


def _upstream_saw(acct, marker: str) -> int:
    return sum(
        1
        for body in list(acct.upstream.rec.requests)
        if any(marker in str(m.get("content")) for m in body.get("messages") or [])
    )


def _retry_after(r: httpx.Response, most: int) -> int:
    value = r.headers["retry-after"]
    assert value.isdigit() and 1 <= int(value) <= most, value
    return int(value)


def _chat(http: httpx.Client, text: str, model: str = "echo", rid: str | None = None, **extra) -> httpx.Response:
    headers = {"x-request-id": rid} if rid else {}
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return http.post("/v1/chat/completions", headers=headers, json=body)


def test_v1_over_rpm_is_a_429_in_openais_shape_that_calls_no_upstream(acct):
    key = cli_json(acct.database_url, "keys", "create", "--name", "rpm2", "--rpm", "2", "--json")
    assert key["limits"] == {"rpm": 2}
    marker = _marker()
    rids = [new_rid() for _ in range(3)]
    with acct.client(key=key["key"]) as http:
        assert [_chat(http, marker, rid=rid).status_code for rid in rids[:2]] == [200, 200]
        r = _chat(http, marker, rid=rids[2])
    assert r.status_code == 429
    _retry_after(r, 60)
    assert r.json() == {
        "error": {
            "message": r.json()["error"]["message"],
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert "requests per minute" in r.json()["error"]["message"]
    assert r.headers["x-request-id"] == rids[2]
    assert _upstream_saw(acct, marker) == 2
    wait_rows(acct.database_url, rids[:2])
    assert usage_rows(acct.database_url, [rids[2]]) == []
    # The official SDK sees OpenAI's own rate-limit error.
    client = openai.OpenAI(base_url=acct.url + "/v1", api_key=key["key"], max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": marker}])
    assert caught.value.code == "rate_limit_exceeded"
    assert _upstream_saw(acct, marker) == 2


def test_project_over_rpm_stores_nothing_in_the_session(acct):
    made = cli_json(
        acct.database_url, "projects", "create", "--name", "rpm1", "--model", "echo", "--rpm", "1", "--json"
    )
    assert made["limits"] == {"rpm": 1}
    base = f"/api/project/{made['id']}/integration/api"
    marker = _marker()
    with acct.client(key=made["api_key"], **{"x-session-id": "limited"}) as http:
        first = http.post(base + "/chat/completions", json={"messages": [{"role": "user", "content": marker}]})
        assert first.status_code == 200
        for stream in (False, True):
            r = http.post(
                base + "/chat/completions",
                json={"messages": [{"role": "user", "content": marker + " again"}], "stream": stream},
            )
            assert r.status_code == 429 and r.headers["content-type"] == "application/json"
            _retry_after(r, 60)
            assert r.json()["error"]["code"] == "rate_limit_exceeded" and r.json()["error"]["type"] == "requests"
        stored = http.get(base + "/sessions/limited").json()["messages"]
    assert [m["content"] for m in stored] == [marker, f"echo: {marker}"]
    assert _upstream_saw(acct, marker) == 1


def test_v8_over_rpm_answers_in_v8s_shape_and_stores_nothing(acct):
    app = cli_json(acct.database_url, "integrations", "create", "--name", "rpm1", "--rpm", "1", "--json")
    assert app["limits"] == {"rpm": 1} and app["user_limits"] == {}
    v8 = V8(acct.url, app, user_id="someone")
    conv = v8.conversation(settings={"model": "echo"})["id"]  # not a model request: no limit
    marker = _marker()
    assert v8.send(conv, content=marker, stream=False).status_code == 200
    for stream in (False, True):
        r = v8.send(conv, content=marker + " again", stream=stream)
        assert r.status_code == 429
        _retry_after(r, 60)
        assert list(r.json()) == ["error"] and isinstance(r.json()["error"], str)
        assert "requests per minute" in r.json()["error"]
    assert [m["content"] for m in v8.messages(conv)] == [marker, f"echo: {marker}"]
    # A title is a model request too.
    r = v8.http.post(f"/chat/conversations/{conv}/generate-title")
    assert r.status_code == 429 and isinstance(r.json()["error"], str)
    assert _upstream_saw(acct, marker) == 1


def test_v8_end_users_each_have_their_own_limit(acct):
    app = cli_json(acct.database_url, "integrations", "create", "--name", "per-user", "--user-rpm", "1", "--json")
    assert app["user_limits"] == {"rpm": 1} and app["limits"] == {}
    alice, bob = V8(acct.url, app, user_id="alice"), V8(acct.url, app, user_id="bob")
    a, b = alice.conversation()["id"], bob.conversation()["id"]
    assert alice.send(a, content="one", stream=False).status_code == 200
    assert alice.send(a, content="two", stream=False).status_code == 429
    assert bob.send(b, content="one", stream=False).status_code == 200
    assert bob.send(b, content="two", stream=False).status_code == 429


def test_a_spent_budget_is_insufficient_quota_until_the_period_ends(acct):
    key = cli_json(
        acct.database_url, "keys", "create", "--name", "budget", "--budget-usd", "0.00001", "--json"
    )  # one "priced" request costs more than that
    assert key["limits"] == {"budget_usd": 0.00001, "budget_period": "day"}
    marker = _marker()
    rid = new_rid()
    with acct.client(key=key["key"]) as http:
        assert _chat(http, marker, model="priced").status_code == 200
        r = _chat(http, marker, model="priced", rid=rid)
        assert r.status_code == 429
        seconds = _retry_after(r, 86400)
        midnight = 86400 - int(time.time()) % 86400
        assert abs(seconds - midnight) <= 5
        assert r.json()["error"]["code"] == "insufficient_quota"
        assert r.json()["error"]["type"] == "insufficient_quota"
        # Unpriced models are refused as well: the budget is spent.
        assert _chat(http, marker).status_code == 429
    assert _upstream_saw(acct, marker) == 1
    assert usage_rows(acct.database_url, [rid]) == []


def test_over_tpm_is_a_tokens_rate_limit(acct):
    key = cli_json(acct.database_url, "keys", "create", "--name", "tpm", "--tpm", "10", "--json")
    with acct.client(key=key["key"]) as http:
        assert _chat(http, "a").status_code == 200  # 18 tokens
        r = _chat(http, "b")
    assert r.status_code == 429 and r.json()["error"]["type"] == "tokens"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    _retry_after(r, 60)


def test_concurrent_streams_are_limited_and_a_finished_one_frees_its_slot(acct):
    key = cli_json(acct.database_url, "keys", "create", "--name", "streams", "--max-streams", "1", "--json")
    assert key["limits"] == {"max_streams": 1}
    body = {"model": "endless", "messages": [{"role": "user", "content": "go"}], "stream": True}
    with (
        acct.client(key=key["key"]) as http,
        httpx.Client(base_url=acct.url, headers={"authorization": f"Bearer {key['key']}"}, timeout=30) as other,
    ):
        with http.stream("POST", "/v1/chat/completions", json=body) as first:
            assert first.status_code == 200
            lines = first.iter_lines()  # kept: a dropped iterator closes the response
            next(lines)
            r = other.post("/v1/chat/completions", json=body)
            assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
            _retry_after(r, 60)
            assert _chat(other, "not a stream").status_code == 200

        def accepted() -> bool:
            with other.stream("POST", "/v1/chat/completions", json=body) as again:
                return again.status_code == 200

        wait_for(accepted, "the slot to be free again")


def test_bad_input_after_admission_does_not_use_up_the_limit(acct):
    made = ("projects", "create", "--name", "refund", "--model", "echo", "--rpm", "1", "--json")
    project = cli_json(acct.database_url, *made)
    url = f"/api/project/{project['id']}/integration/api/chat/completions"
    with acct.client(key=project["api_key"]) as http:
        bad = http.post(url, json={"messages": [{"role": "assistant", "content": "no"}]})
        assert bad.status_code == 400  # found inside the turn, after admission: refunded
        assert http.post(url, json={"messages": [{"role": "user", "content": "good"}]}).status_code == 200
        assert http.post(url, json={"messages": [{"role": "user", "content": "over"}]}).status_code == 429


def test_embeddings_count_against_the_limit(acct):
    key = cli_json(acct.database_url, "keys", "create", "--name", "embed", "--rpm", "1", "--json")
    with acct.client(key=key["key"]) as http:
        body = {"model": "text-embedding-3-small", "input": "hello"}
        assert http.post("/v1/embeddings", json=body).status_code == 200
        r = http.post("/v1/embeddings", json=body)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"


def test_limits_changed_from_the_cli_apply_to_a_running_server(acct):
    key = cli_json(acct.database_url, "keys", "create", "--name", "later", "--json")
    assert key["limits"] == {}
    with acct.client(key=key["key"]) as http:
        assert [_chat(http, "x").status_code for _ in range(3)] == [200, 200, 200]
        updated = cli_json(acct.database_url, "keys", "update", key["id"], "--rpm", "1")
        assert updated["limits"] == {"rpm": 1}
        codes = [_chat(http, "x").status_code for _ in range(2)]
        assert codes == [200, 429]
        cleared = cli_json(acct.database_url, "keys", "update", key["id"], "--rpm", "0")
        assert cleared["limits"] == {}
        assert _chat(http, "x").status_code == 200


def test_cli_limit_flags_round_trip(tmp_path):
    db = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"  # the CLI is the same on either database
    key = cli_json(
        db,
        "keys",
        "create",
        "--name",
        "all-flags",
        "--rpm",
        "60",
        "--tpm",
        "100000",
        "--budget-usd",
        "5",
        "--budget-period",
        "month",
        "--max-streams",
        "3",
        "--json",
    )
    want = {"rpm": 60, "tpm": 100000, "max_streams": 3, "budget_usd": 5.0, "budget_period": "month"}
    assert key["limits"] == want and key["key"].startswith("sk-")
    listed = {k["id"]: k for k in cli_json(db, "keys", "list", "--json")}
    assert listed[key["id"]]["limits"] == want and listed[key["id"]]["name"] == "all-flags"
    updated = cli_json(db, "keys", "update", key["id"], "--name", "renamed", "--tpm", "0", "--budget-period", "day")
    assert updated["name"] == "renamed"
    assert updated["limits"] == {"rpm": 60, "max_streams": 3, "budget_usd": 5.0, "budget_period": "day"}
    text = cli(db, "keys", "list")
    assert "renamed" in text.stdout and "rpm=60" in text.stdout

    project = cli_json(db, "projects", "create", "--name", "p", "--rpm", "5", "--max-streams", "2", "--json")
    assert project["limits"] == {"rpm": 5, "max_streams": 2}
    shown = cli_json(db, "projects", "update", project["id"], "--budget-usd", "1.5", "--temperature", "0.2")
    assert shown["limits"] == {"rpm": 5, "max_streams": 2, "budget_usd": 1.5, "budget_period": "day"}
    assert shown["temperature"] == 0.2
    assert cli_json(db, "projects", "show", project["id"])["limits"] == shown["limits"]
    assert {p["id"]: p for p in cli_json(db, "projects", "list", "--json")}[project["id"]]["limits"] == shown["limits"]

    app = cli_json(db, "integrations", "create", "--name", "i", "--tpm", "500", "--user-rpm", "3", "--json")
    assert app["limits"] == {"tpm": 500} and app["user_limits"] == {"rpm": 3}
    updated = cli_json(
        db, "integrations", "update", app["app_id"], "--name", "i2", "--user-budget-usd", "0.5", "--rpm", "7"
    )
    assert updated["name"] == "i2"
    assert updated["limits"] == {"rpm": 7, "tpm": 500}
    assert updated["user_limits"] == {"rpm": 3, "budget_usd": 0.5, "budget_period": "day"}
    shown = cli_json(db, "integrations", "show", app["app_id"])
    assert (shown["limits"], shown["user_limits"]) == (updated["limits"], updated["user_limits"])
    listed = {i["app_id"]: i for i in cli_json(db, "integrations", "list", "--json")}
    assert listed[app["app_id"]]["user_limits"] == updated["user_limits"]

    # Bad values change nothing.
    assert cli(db, "keys", "update", key["id"], "--budget-period", "week").returncode != 0
    assert cli(db, "keys", "update", key["id"], "--rpm", "-1").returncode != 0
    assert cli(db, "keys", "update", "key_nope", "--rpm", "1").returncode != 0
    assert cli(db, "keys", "create", "--name", "never-made", "--budget-period", "year").returncode != 0
    after = cli_json(db, "keys", "list", "--json")
    assert {k["id"]: k for k in after}[key["id"]]["limits"] == {
        "rpm": 60,
        "max_streams": 3,
        "budget_usd": 5.0,
        "budget_period": "day",
    }
    assert not any(k["name"] == "never-made" for k in after)
