"""Filters any end user may send cannot freeze, crash or slow the server: big $in lists compile
to one bound array, oversized or deeply nested filters are a 400, and every filtered query runs
under a time limit. On SQLite and PostgreSQL, through POST …/contents-filter and search."""

from __future__ import annotations

import pytest

from parley.app import create_app
from tests.conftest import cli_json
from tests.conftest import test_settings as settings_for
from tests.polling import wait_for
from tests.servers import ThreadedServer
from tests.v8_helpers import V8

# n: numbers 0..9, the string "3", true, null, 1.5, and one content without n.
ATTRS = {f"k{i}": {"n": i} for i in range(10)} | {
    "str3": {"n": "3"},
    "t": {"n": True},
    "nul": {"n": None},
    "f": {"n": 1.5},
    "none": {"other": 1},
}
EVENS = list(range(0, 1994, 2))  # 997 numbers, none of them matching 1 (so true must not match 1)


@pytest.fixture(scope="module")
def kb(parley):
    app = cli_json(parley.database_url, "integrations", "create", "--name", "limits", "--json")
    admin = V8(parley.url, app, admin=True)
    memory = admin.http.post("/memories", json={"name": "limits"}).json()
    for key, attrs in ATTRS.items():
        r = admin.http.post(
            f"/memories/{memory['id']}/contents", json={"content": f"c {key}", "key": key, "attrs": attrs}
        )
        assert r.status_code == 200, r.text
    wait_embedded(admin, memory["id"])
    user = V8(parley.url, app, user_id="anyone")  # an ek- token is all an end user has
    return user, memory["id"], app


def wait_embedded(admin: V8, memory_id: str) -> None:
    """Until every content's chunks are searchable, so searches really run their filters."""
    contents = admin.http.get(f"/memories/{memory_id}/contents").json()

    def embedded(content_id: str) -> bool:
        chunks = admin.http.get(f"/memories/{memory_id}/contents/{content_id}/chunks").json()
        return bool(chunks) and all(c["embedding_status"] == "completed" for c in chunks)

    wait_for(lambda: all(embedded(c["id"]) for c in contents), "every content's chunks embedded", 60)


def keys(kb, body) -> list[str]:
    user, mid, _ = kb
    r = user.http.post(f"/memories/{mid}/contents-filter", json=body)
    assert r.status_code == 200, r.text
    return sorted(c["key"] for c in r.json())


def test_a_thousand_values_in_one_list(kb):
    values = [*EVENS, "3", True, 1.5]  # 1,000 values of mixed types
    assert len(values) == 1000
    assert keys(kb, {"attrs": {"n": {"$in": values}}}) == ["f", "k0", "k2", "k4", "k6", "k8", "str3", "t"]
    assert keys(kb, {"attrs": {"n": {"$nin": values}}}) == ["k1", "k3", "k5", "k7", "k9", "none", "nul"]
    assert keys(kb, {"attrs": {"n": {"$in": [None, "nope", 7]}}}) == ["k7", "nul"]
    assert keys(kb, {"attrs": {"n": {"$in": []}}}) == []
    big = 18446744073709551615  # past SQLite's 64-bit integers: compared as the float it reads as
    assert keys(kb, {"attrs": {"n": {"$in": [big, 2]}}}) == ["k2"]
    assert keys(kb, {"attrs": {"n": big}}) == []
    assert keys(kb, {"attrs": {"n": {"$lt": big, "$gt": 8}}}) == ["k9"]
    assert len(keys(kb, {"attrs": {"n": {"$nin": []}}})) == len(ATTRS)


def nested(op: str, levels: int) -> dict:
    spec: dict = {"n": 1}
    for _ in range(levels):
        spec = {op: spec} if op == "$not" else {op: [spec]}
    return spec


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"attrs": {"n": {"$in": [7] * 100_000}}}, "$in"),  # 200 kB: under the test body limit
        ({"attrs": {"n": {"$in": list(range(1001))}}}, "$in"),
        ({"attrs": {"n": {"$nin": ["x"] * 1001}}}, "$nin"),
        ({"attrs": {"$or": [{f"k{i}": {"$in": list(range(1000))}} for i in range(11)]}}, "10000"),
        ({"attrs": nested("$not", 500)}, "nest"),  # past the JSON nesting limit already
        ({"attrs": nested("$or", 200)}, "nest"),
        ({"attrs": nested("$and", 11)}, "nests"),
        ({"attrs": {f"k{i}": i for i in range(201)}}, "200 conditions"),
        ({"attrs": {"$or": [{"n": i} for i in range(5000)]}}, "200 conditions"),
        ({"attrs": {"s": {"$regex": "a" * 100_000}}}, "$regex"),
        ({"attrs": {"s": {"$regex": "a" * 1001}}}, "$regex"),
        ({"attrs": {"s": {"$contains": "a" * 1001}}}, "$contains"),
        ({"attrs": {"n": {"$in": [[1], {"a": 1}]}}}, "$in"),
        ({"content_keywords": "a" * 1001}, "content_keywords"),
    ],
    ids=[
        "in-100k",
        "in-1001",
        "nin-1001",
        "values-in-all",
        "not-500-deep",
        "or-200-deep",
        "and-11-deep",
        "201-keys",
        "or-5000-wide",
        "regex-100k",
        "regex-1001",
        "contains-1001",
        "in-objects",
        "keywords-1001",
    ],
)
def test_oversized_filters_are_400_naming_the_limit(kb, body, named):
    user, mid, _ = kb
    r = user.http.post(f"/memories/{mid}/contents-filter", json=body)
    assert r.status_code == 400 and named in r.json()["error"], r.text[:500]
    search = {"query": "c", "content_filter": body, "min_similarity": 0}
    r = user.http.post(f"/memories/{mid}/embeddings-search-chunks", json=search)
    assert r.status_code == 400 and named in r.json()["error"], r.text[:500]
    assert user.http.get("/models").status_code == 200  # the server still answers


def test_the_deepest_and_widest_filters_allowed_still_run(kb):
    assert keys(kb, {"attrs": nested("$and", 10)}) == ["k1"]
    assert keys(kb, {"attrs": nested("$not", 10)}) == ["k1"]  # ten negations cancel out
    assert keys(kb, {"attrs": {"$or": [{"n": i} for i in range(199)]}}) == [f"k{i}" for i in range(10)]
    assert keys(kb, {"attrs": {"n": {"$regex": "a" * 1000}}}) == []


def test_a_regex_postgresql_will_not_run_is_400_there(parley, kb):
    """RE2 syntax is checked everywhere; PostgreSQL then runs the pattern in its own engine, and
    what that engine refuses (here RE2's \\p classes, or a repetition past 255) is a 400 too."""
    user, mid, _ = kb
    for pattern in (r"\pL", "(a|b){1000}"):
        r = user.http.post(f"/memories/{mid}/contents-filter", json={"attrs": {"n": {"$regex": pattern}}})
        if parley.database_url.startswith("postgresql"):
            assert r.status_code == 400 and "PostgreSQL cannot run this $regex" in r.json()["error"], r.text
        else:
            assert r.status_code == 200 and r.json() == [], r.text


@pytest.fixture(scope="module")
def slow_kb(parley):
    """Contents whose attributes are 30,000 characters long."""
    app = cli_json(parley.database_url, "integrations", "create", "--name", "slow-filters", "--json")
    admin = V8(parley.url, app, admin=True)
    memory = admin.http.post("/memories", json={"name": "long attrs"}).json()
    for i in range(60):
        long = ("lorem ipsum dolor sit amet " * 1200)[:30_000]
        body = {"content": f"c {i}", "key": str(i), "attrs": {"s": long, "i": i}}
        assert admin.http.post(f"/memories/{memory['id']}/contents", json=body).status_code == 200
    return admin, memory["id"], app


def test_a_costly_regex_still_answers_correctly(slow_kb):
    admin, mid, _ = slow_kb
    # Capturing groups over long values once made RE2 fall back to its slowest engine.
    r = admin.http.post(f"/memories/{mid}/contents-filter", json={"attrs": {"s": {"$regex": "(.*a){20}"}}})
    assert r.status_code == 200 and len(r.json()) == 60, r.text[:300]
    r = admin.http.post(f"/memories/{mid}/contents-filter", json={"attrs": {"s": {"$regex": "(.*z){20}"}}})
    assert r.status_code == 200 and r.json() == [], r.text[:300]


def test_a_filter_past_the_time_limit_is_cut_off(parley, slow_kb):
    """A server whose filter time limit is far below what the query needs stops it and says so."""
    admin, mid, app = slow_kb
    settings = settings_for(parley.database_url, parley.upstream.url, filter_timeout=0.001)
    with ThreadedServer(create_app(settings)) as server:
        tight = V8(server.url, app, admin=True)
        body = {"attrs": {"$or": [{"s": {"$regex": f"(.*{c}){{20}}"}} for c in "qxyzwvk"]}}
        r = tight.http.post(f"/memories/{mid}/contents-filter", json=body)
        assert r.status_code == 400, r.text[:300]
        assert r.json() == {"error": "The content filter took longer than 0.001 s to run; make it narrower."}
        r = tight.http.get(f"/memories/{mid}/contents")  # no filter: no limit
        assert r.status_code == 200 and len(r.json()) == 60


def test_a_conversation_refuses_a_filter_it_could_never_run(kb):
    """Refused when set, rather than at every turn after the user's message is stored."""
    user = kb[0]
    too_deep = {"memories": {"collections": [kb[1]], "content_filter": {"attrs": nested("$not", 11)}}}
    r = user.http.post("/chat/conversations", json={"reference_settings": too_deep})
    assert r.status_code == 400 and "nests" in r.json()["error"], r.text
    fine = {"memories": {"collections": [kb[1]], "content_filter": {"attrs": {"n": 1}}}}
    conversation = user.conversation(reference_settings=fine)
    r = user.http.put(f"/chat/conversations/{conversation['id']}", json={"reference_settings": too_deep})
    assert r.status_code == 400 and "nests" in r.json()["error"], r.text
    stored = user.http.get(f"/chat/conversations/{conversation['id']}").json()["reference_settings"]
    assert stored["memories"]["content_filter"] == {"attrs": {"n": 1}}
