"""Upstream failures reach callers as OpenAI's clients expect, in every dialect, naming nothing internal."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import cli_json
from tests.v8_helpers import V8

USER = [{"role": "user", "content": "x"}]


def sdk(parley) -> openai.OpenAI:
    return openai.OpenAI(base_url=parley.url + "/v1", api_key=parley.key, max_retries=0)


def error_of(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def assert_names_nothing_internal(parley, message: str) -> None:
    for internal in ("fail-404", "fail-401", "sk-upstr", "org-upstream", parley.upstream.url, "127.0.0.1", "'up'"):
        assert internal not in message, message


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["misnamed", "fail-401"])
def test_upstream_refusing_the_server_is_a_502_configuration_fault(parley, model, stream):
    with parley.client() as http:
        r = http.post("/v1/chat/completions", json={"model": model, "messages": USER, "stream": stream})
    assert r.status_code == 502, r.text
    err = error_of(r)
    assert err["type"] == "upstream_error" and err["code"] == "upstream_error"
    assert "configuration" in err["message"]
    assert_names_nothing_internal(parley, err["message"])


def test_upstream_404_through_the_sdk_is_a_server_error_not_the_callers(parley):
    with pytest.raises(openai.InternalServerError) as info:
        sdk(parley).chat.completions.create(model="misnamed", messages=USER)
    assert info.value.status_code == 502


def test_upstream_429_passes_retry_after_on(parley):
    with parley.client() as http:
        r = http.post("/v1/chat/completions", json={"model": "fail-429", "messages": USER})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "20"
    err = error_of(r)
    assert err["code"] == "rate_limit_exceeded" and err["type"] == "rate_limit_error"
    assert_names_nothing_internal(parley, err["message"])
    with pytest.raises(openai.RateLimitError) as info:
        sdk(parley).chat.completions.create(model="fail-429", messages=USER, stream=True)
    assert info.value.response.headers["retry-after"] == "20"


def test_upstream_400_is_an_invalid_request_with_the_upstreams_message(parley):
    with parley.client() as http:
        r = http.post("/v1/chat/completions", json={"model": "fail-400", "messages": USER})
    assert r.status_code == 400
    err = error_of(r)
    assert err["type"] == "invalid_request_error" and err["message"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        sdk(parley).chat.completions.create(model="fail-400", messages=USER)


def test_upstream_503_is_a_502_with_the_upstreams_message(parley):
    with parley.client() as http:
        r = http.post("/v1/chat/completions", json={"model": "fail-503", "messages": USER})
    assert r.status_code == 502
    err = error_of(r)
    assert err["type"] == "upstream_error" and "overloaded" in err["message"]


def test_embedding_upstream_404_is_a_502(parley):
    with parley.client() as http:
        r = http.post("/v1/embeddings", json={"model": "misnamed-embed", "input": "hello"})
    assert r.status_code == 502
    assert_names_nothing_internal(parley, error_of(r)["message"])


def test_v8_gets_the_same_statuses_and_retry_after_in_its_own_shape(parley):
    v8 = V8(parley.url, cli_json(parley.database_url, "integrations", "create", "--name", "errs", "--json"))
    conv = v8.conversation(settings={"model": "misnamed"})
    r = v8.send(conv["id"], content="go")
    assert r.status_code == 502 and set(r.json()) == {"error"}
    assert_names_nothing_internal(parley, r.json()["error"])
    conv = v8.conversation(settings={"model": "fail-429"})
    r = v8.send(conv["id"], content="go", stream=False)
    assert r.status_code == 429 and r.headers["retry-after"] == "20" and set(r.json()) == {"error"}


def test_project_api_gets_the_same_statuses(parley):
    made = cli_json(parley.database_url, "projects", "create", "--name", "errs", "--model", "misnamed", "--json")
    with parley.client(key=made["api_key"]) as http:
        r = http.post(f"/api/project/{made['id']}/integration/api/chat/completions", json={"messages": USER})
    assert r.status_code == 502
    assert_names_nothing_internal(parley, error_of(r)["message"])
