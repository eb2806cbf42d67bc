"""v8 token verification exactly as seed 003 specifies it, with its exact error bodies."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from tests.conftest import cli, cli_json
from tests.v8_helpers import V8, js_token

MISSING = {
    "error": {
        "message": "Missing bearer authentication in header",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
}
INVALID = {
    "error": {"message": "Invalid token", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
}


@pytest.fixture(scope="module")
def app(parley):
    return cli_json(parley.database_url, "integrations", "create", "--name", "tokens", "--json")


def get(parley, token: str | None, path: str = "/v8/models") -> httpx.Response:
    headers = {"authorization": token} if token is not None else {}
    return httpx.get(parley.url + path, headers=headers)


def test_cli_token_is_accepted(parley, app):
    made = cli(parley.database_url, "token", "--app-id", app["app_id"], "--user-id", "cli-user", "--user-name", "Ada")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("ek-")
    payload = json.loads(base64.b64decode(token[3:]))
    assert list(payload) == ["hash", "app_id", "user_id", "expired_time", "user_name"]
    assert get(parley, f"Bearer {token}").status_code == 200
    admin = cli(parley.database_url, "token", "--app-id", app["app_id"], "--user-id", "x", "--admin").stdout.strip()
    assert admin.startswith("ak-") and get(parley, f"Bearer {admin}").status_code == 200


def test_the_seeds_javascript_token_is_accepted(parley, app):
    token = js_token(app["hash_token"], app["app_id"], "u-1", int(time.time()) + 60, "Grace")
    assert get(parley, f"Bearer {token}").status_code == 200


def test_missing_header(parley):
    for header in (None, "", "Bearer", "Basic abc", "ek-abc"):
        r = get(parley, header)
        assert r.status_code == 401 and r.json() == MISSING, header


@pytest.mark.parametrize(
    "mutate",
    [
        "expired",
        "tampered",
        "wrong_prefix",
        "not_base64",
        "not_json",
        "wrong_secret",
        "admin_secret_on_ek",
        "unknown_app",
        "missing_field",
        "json_array",
    ],
)
def test_bad_tokens_are_invalid(parley, app, mutate):
    now = int(time.time())
    token = js_token(app["hash_token"], app["app_id"], "u", now + 60)
    body = json.loads(base64.b64decode(token[3:]))
    if mutate == "expired":
        token = js_token(app["hash_token"], app["app_id"], "u", now - 1)
    elif mutate == "tampered":
        body["user_id"] = "someone-else"
        token = "ek-" + base64.b64encode(json.dumps(body).encode()).decode()
    elif mutate == "wrong_prefix":
        token = "xk-" + token[3:]
    elif mutate == "not_base64":
        token = "ek-%%%not base64%%%"
    elif mutate == "not_json":
        token = "ek-" + base64.b64encode(b"{not json").decode()
    elif mutate == "wrong_secret":
        token = js_token("not-the-secret", app["app_id"], "u", now + 60)
    elif mutate == "admin_secret_on_ek":
        token = js_token(app["admin_token"], app["app_id"], "u", now + 60)
    elif mutate == "unknown_app":
        token = js_token(app["hash_token"], "no-such-app", "u", now + 60)
    elif mutate == "missing_field":
        del body["expired_time"]
        token = "ek-" + base64.b64encode(json.dumps(body).encode()).decode()
    elif mutate == "json_array":
        token = "ek-" + base64.b64encode(b"[1,2]").decode()
    r = get(parley, f"Bearer {token}")
    assert r.status_code == 401 and r.json() == INVALID


def test_rotation_retires_old_tokens(parley):
    made = cli_json(parley.database_url, "integrations", "create", "--name", "rotating", "--json")
    client = V8(parley.url, made)
    assert client.http.get("/models").status_code == 200
    rotated = cli_json(parley.database_url, "integrations", "rotate", made["app_id"], "--which", "hash_token")
    assert set(rotated) == {"app_id", "hash_token"} and rotated["hash_token"] != made["hash_token"]
    assert client.http.get("/models").json() == INVALID
    assert V8(parley.url, {**made, "hash_token": rotated["hash_token"]}).http.get("/models").status_code == 200
    assert V8(parley.url, made, admin=True).http.get("/models").status_code == 200  # admin secret unchanged
    shown = cli_json(parley.database_url, "integrations", "show", made["app_id"], "--secrets")
    assert shown["hash_token"] == rotated["hash_token"]
    listed = cli(parley.database_url, "integrations", "list", "--json").stdout
    assert rotated["hash_token"] not in listed and made["admin_token"] not in listed


def test_secrets_are_not_stored_in_clear(parley):
    import asyncio

    from sqlalchemy import text

    from parley.storage.db import create_engine

    made = cli_json(parley.database_url, "integrations", "create", "--name", "sealed", "--json")

    async def dump() -> str:
        engine = create_engine(parley.database_url)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT * FROM integrations"))).all()
        await engine.dispose()
        return repr(rows)

    assert made["hash_token"] not in asyncio.run(dump())
