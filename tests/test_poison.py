"""Input that one database stores and the other cannot, or that cannot be read back out, is
refused with a 400 that names the field and changes nothing; what is stored always comes back
out. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import cli_json
from tests.v8_helpers import V8, js_token

NUL = "a\x00b"


@pytest.fixture(scope="module")
def world(parley):
    app = cli_json(parley.database_url, "integrations", "create", "--name", "poison", "--json")
    user = V8(parley.url, app, user_id="nul-user")
    admin = V8(parley.url, app, user_id="nul-admin", admin=True)
    conversation = user.conversation(title="kept", custom_data={"k": "v"})
    memory = admin.http.post("/memories", json={"name": "kept"}).json()
    r = admin.http.post(f"/memories/{memory['id']}/contents", json={"content": "kept", "key": "kept"})
    assert r.status_code == 200, r.text
    project = cli_json(parley.database_url, "projects", "create", "--name", "nul", "--json")
    return {
        "app": app,
        "user": user,
        "admin": admin,
        "conversation": conversation,
        "memory": memory,
        "project": project,
    }


def snapshot(parley, w) -> dict:
    """Everything the requests below could have changed, read back over HTTP."""
    user, admin, cid, mid = w["user"], w["admin"], w["conversation"]["id"], w["memory"]["id"]
    project = w["project"]
    with parley.client(key=project["api_key"]) as http:
        session = http.get(f"/api/project/{project['id']}/integration/api/sessions/s-nul")
    return {
        "conversations": user.http.get("/chat/conversations").json(),
        "messages": user.http.get(f"/chat/conversations/{cid}/messages").json(),
        "memories": admin.http.get("/memories").json(),
        "contents": admin.http.get(f"/memories/{mid}/contents").json(),
        "session": session.status_code,
    }


def v8_cases(w) -> list[tuple[str, str, str, object, str]]:
    """(who, method, path, body, the field the 400 must name)."""
    cid, mid = w["conversation"]["id"], w["memory"]["id"]
    msgs = f"/chat/conversations/{cid}/messages"
    return [
        ("user", "POST", "/chat/conversations", {"title": NUL}, "title"),
        ("user", "POST", "/chat/conversations", {"settings": {"prompt": NUL}}, "settings.prompt"),
        ("user", "POST", "/chat/conversations", {"custom_data": {NUL: 1}}, "custom_data"),
        ("user", "POST", "/chat/conversations", {"custom_data": {"k": [1, {"x": NUL}]}}, "custom_data.k[1].x"),
        ("user", "PUT", f"/chat/conversations/{cid}", {"title": NUL}, "title"),
        ("user", "POST", msgs, {"content": NUL, "stream": False}, "content"),
        ("user", "POST", msgs, {"content": NUL, "stream": True}, "content"),
        ("user", "POST", msgs, {"content": "x", "custom_data": {"k": NUL}, "stream": False}, "custom_data.k"),
        ("admin", "POST", "/memories", {"name": NUL}, "name"),
        ("admin", "POST", "/memories", {"name": "m", "description": NUL}, "description"),
        ("admin", "PUT", f"/memories/{mid}", {"description": NUL}, "description"),
        ("admin", "POST", f"/memories/{mid}/contents", {"content": NUL}, "content"),
        ("admin", "POST", f"/memories/{mid}/contents", {"content": "x", "key": NUL}, "key"),
        ("admin", "POST", f"/memories/{mid}/contents", {"content": "x", "attrs": {NUL: 1}}, "attrs"),
        ("admin", "POST", f"/memories/{mid}/contents", {"content": "x", "attrs": {"a": NUL}}, "attrs.a"),
        ("user", "POST", f"/memories/{mid}/contents-filter", {"attrs": {"a": NUL}}, "attrs.a"),
        ("user", "POST", f"/memories/{mid}/contents-filter", {"content_keywords": NUL}, "content_keywords"),
        ("user", "POST", f"/memories/{mid}/embeddings-search-chunks", {"query": NUL}, "query"),
    ]


def test_nul_in_a_v8_body_is_400_naming_the_field(parley, world):
    before = snapshot(parley, world)
    for who, method, path, body, field in v8_cases(world):
        r = world[who].http.request(method, path, json=body)
        assert r.status_code == 400, (path, body, r.status_code, r.text)
        error = r.json()["error"]
        assert error.startswith(f"Invalid value for '{field}': ") and "NUL (\\u0000)" in error, (path, error)
    assert snapshot(parley, world) == before


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/chat/conversations/a%00b", "path"),
        ("/chat/conversations/a%00b/messages", "path"),
        ("/memories/a%00b/contents", "path"),
        ("/memories/MID/contents?keywords=a%00b", "query string"),
        ("/memories/MID/contents?type=%00", "query string"),
    ],
)
def test_nul_in_a_path_or_query_is_400(parley, world, path, what):
    path = path.replace("MID", world["memory"]["id"])
    r = world["user"].http.get(path)
    assert (r.status_code, r.json()) == (400, {"error": f"The URL's {what} may not contain NUL (%00) characters."})


def test_a_token_holding_nul_is_refused_as_invalid(parley, world):
    app = world["app"]
    for app_id, user_id in ((app["app_id"] + "\x00", "u"), (app["app_id"], "u\x00x")):
        token = js_token(app["hash_token"], app_id, user_id, int(time.time()) + 3600)
        with parley.client(key=token) as http:
            r = http.get("/v8/chat/conversations")
        assert r.status_code == 401, r.text
        assert r.json()["error"]["message"] == "Invalid token"


def test_nul_in_project_chat_is_400(parley, world):
    project = world["project"]
    before = snapshot(parley, world)
    url = f"/api/project/{project['id']}/integration/api"
    with parley.client(key=project["api_key"], **{"x-session-id": "s-nul"}) as http:
        r = http.post(url + "/chat/completions", json={"messages": [{"role": "user", "content": NUL}]})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "messages[0].content"
        assert r.json()["error"]["code"] == "invalid_value"
    with parley.client() as http:  # the gateway refuses it too: one policy everywhere
        r = http.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": NUL}]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].content", r.text
    assert snapshot(parley, world) == before


def test_json_nested_past_the_limit_is_400(parley, world):
    deep: object = "x"
    for _ in range(65):
        deep = {"d": deep}
    r = world["user"].http.post("/chat/conversations", json={"custom_data": deep})
    assert r.status_code == 400 and "nest at most 64 levels" in r.json()["error"], r.text
    deep = "x"
    for _ in range(62):  # 62 here, inside custom_data inside the body: 64 levels
        deep = {"d": deep}
    conversation = world["user"].conversation(custom_data=deep)
    r = world["user"].http.get(f"/chat/conversations/{conversation['id']}")
    assert r.status_code == 200 and r.json()["custom_data"] == deep


def test_numbers_past_64_bits_come_back_out(parley, world):
    """1e20 is stored as PostgreSQL's integer 100000000000000000000, which orjson cannot write."""
    user = world["user"]
    data = {"n": 100000000000000000000, "m": -1e300, "big": 18446744073709551615, "tiny": 5e-324}
    conversation = user.conversation(custom_data=data)
    listed = user.http.get("/chat/conversations")
    assert listed.status_code == 200, listed.text
    one = user.http.get(f"/chat/conversations/{conversation['id']}")
    assert one.status_code == 200, one.text
    assert one.json()["custom_data"] == {"n": 1e20, "m": -1e300, "big": 18446744073709551615, "tiny": 5e-324}
    r = user.send(conversation["id"], content="hi", custom_data={"n": 1e300}, stream=False)
    assert r.status_code == 200, r.text
    assert user.messages(conversation["id"])[0]["custom_data"] == {"n": 1e300}


def test_a_stored_value_orjson_cannot_write_still_comes_back_out(parley, world):
    """Whatever is in the database (an older server, a hand-edited row) is always served."""
    from sqlalchemy import text

    from parley.storage.db import create_engine

    user = world["user"]
    conversation = user.conversation(title="hand-edited")

    async def edit() -> None:
        engine = create_engine(parley.database_url)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE conversations SET custom_data = :v WHERE id = :id"),
                {"v": '{"huge": 1e400, "int": 100000000000000000000000}', "id": conversation["id"]},
            )
        await engine.dispose()

    asyncio.run(edit())
    r = user.http.get(f"/chat/conversations/{conversation['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["custom_data"]["int"] == 1e23
    assert user.http.get("/chat/conversations").status_code == 200


@pytest.mark.parametrize("session_id", [5, {"a": 1}, ["x"], True, 1.5])
def test_a_session_id_that_is_not_a_string_is_400(parley, world, session_id):
    project = world["project"]
    with parley.client(key=project["api_key"]) as http:
        r = http.post(f"/api/project/{project['id']}/integration/api/sessions", json={"session_id": session_id})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "session_id"


def test_a_user_id_longer_than_can_be_stored_is_refused(parley, world):
    """PostgreSQL keeps conversations under user ids of at most 255 characters; SQLite took more."""
    app = world["app"]
    for length, status in ((255, 200), (256, 401)):
        token = js_token(app["hash_token"], app["app_id"], "u" * length, int(time.time()) + 3600)
        with parley.client(key=token) as http:
            r = http.post("/v8/chat/conversations", json={"title": "long user"})
        assert r.status_code == status, r.text
        if status == 401:
            assert r.json()["error"]["message"] == "Invalid token"


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "assistant"}],
        [{"role": "function", "name": None, "tool_calls": []}, {"role": "assistant"}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": []}],
    ],
)
def test_a_project_message_without_content_is_a_400_not_a_crash(parley, world, messages):
    """An assistant (or function) message may omit content; there is then nothing to answer."""
    project = world["project"]
    with parley.client(key=project["api_key"]) as http:
        r = http.post(f"/api/project/{project['id']}/integration/api/chat/completions", json={"messages": messages})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "messages"
