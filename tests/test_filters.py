"""Every filter operator, on SQLite and PostgreSQL, through POST …/contents-filter."""

from __future__ import annotations

import pytest

from parley.memory import scoring
from tests.conftest import cli_json
from tests.v8_helpers import V8

DOCS = {
    "a": {
        "type": "document",
        "priority": 8,
        "status": "published",
        "title": "重要的教程",
        "rating": 4.5,
        "tags": ["x"],
        "nested": {"level": 2},
    },
    "b": {"type": "document", "priority": 3, "status": "draft", "title": "Minor Notes", "rating": 3.0},
    "c": {"type": "article", "priority": "9", "status": "featured", "title": "Python 教程 Guide"},
    "d": {"type": "article", "priority": 10, "flag": True},
    "e": None,
}


@pytest.fixture(scope="module")
def kb(parley):
    app = cli_json(parley.database_url, "integrations", "create", "--name", "filters", "--json")
    admin = V8(parley.url, app, admin=True)
    memory = admin.http.post("/memories", json={"name": "filters"}).json()
    for key, attrs in DOCS.items():
        body = {"content": f"content {key}", "key": key, "content_type": "markdown" if key in "cd" else "text"}
        if attrs is not None:
            body["attrs"] = attrs
        assert admin.http.post(f"/memories/{memory['id']}/contents", json=body).status_code == 200
    return admin, memory["id"]


def keys(kb, body) -> list[str]:
    admin, mid = kb
    r = admin.http.post(f"/memories/{mid}/contents-filter", json=body)
    assert r.status_code == 200, r.text
    return sorted(c["key"] for c in r.json())


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"type": "document"}, ["a", "b"]),
        ({"priority": 8}, ["a"]),
        ({"priority": "9"}, ["c"]),  # a string equals strings only
        ({"flag": True}, ["d"]),
        ({"priority": {"$gt": 5}}, ["a", "d"]),  # numbers compare as numbers; "9" is a string
        ({"priority": {"$gte": 8, "$lt": 10}}, ["a"]),
        ({"priority": {"$lte": 3}}, ["b"]),
        ({"rating": {"$gt": 4.0}}, ["a"]),
        ({"title": {"$gt": "N"}}, ["a", "c"]),  # strings compare as strings
        ({"status": {"$ne": "draft"}}, ["a", "c", "d", "e"]),  # $ne matches documents without the key
        ({"status": {"$in": ["published", "draft"]}}, ["a", "b"]),
        ({"status": {"$nin": ["published", "draft"]}}, ["c", "d", "e"]),
        ({"title": {"$contains": "教程"}}, ["a", "c"]),
        ({"title": {"$contains": "minor"}}, ["b"]),  # case-insensitive
        ({"title": {"$startsWith": "Python"}}, ["c"]),
        ({"title": {"$startsWith": "python"}}, []),
        ({"title": {"$endsWith": "Notes"}}, ["b"]),
        ({"title": {"$regex": "^(Minor|Python)\\s"}}, ["b", "c"]),
        ({"title": {"$regex": "(a+)+$"}}, []),  # catastrophic for backtracking engines; RE2 is linear
        ({"tags": {"$exists": True}}, ["a"]),
        ({"status": {"$exists": False}}, ["d", "e"]),
        ({"nested.level": 2}, ["a"]),
        ({"type": "document", "priority": {"$gt": 5}}, ["a"]),  # all conditions hold
        ({"$or": [{"type": "article"}, {"priority": 3}]}, ["b", "c", "d"]),
        ({"$and": [{"type": "article"}, {"flag": {"$exists": True}}]}, ["d"]),
        ({"$not": {"type": "document"}}, ["c", "d", "e"]),
        ({"x'); DROP TABLE memory_contents; --": 1}, []),  # keys are bound, never spliced into SQL
    ],
)
def test_operator(kb, attrs, expected):
    assert keys(kb, {"attrs": attrs}) == expected


def test_combined_with_type_and_keywords(kb):
    assert keys(kb, {"attrs": {"type": "article"}, "content_type": "markdown", "content_keywords": "CONTENT C"}) == [
        "c"
    ]
    assert keys(kb, {}) == ["a", "b", "c", "d", "e"]  # the table survived the injection attempt


@pytest.mark.parametrize(
    ("attrs", "named"),
    [
        ({"a": {"$near": 1}}, "$near"),
        ({"$xor": []}, "$xor"),
        ({"a": {"$in": "notalist"}}, "$in"),
        ({"a": {"$exists": "yes"}}, "$exists"),
        ({"a": {"$gt": {"b": 1}}}, "$gt"),
        ({"a": {"$regex": "(a)\\1"}}, "$regex"),
        ({"a": {"$contains": 5}}, "$contains"),
        ({"$or": {}}, "$or"),
        ({"a": {"b": 1}}, "a"),
    ],
)
def test_malformed_filters_are_400_naming_the_problem(kb, attrs, named):
    admin, mid = kb
    r = admin.http.post(f"/memories/{mid}/contents-filter", json={"attrs": attrs})
    assert r.status_code == 400 and named in r.json()["error"], r.text


def test_unknown_filter_field_is_400(kb):
    admin, mid = kb
    assert admin.http.post(f"/memories/{mid}/contents-filter", json={"owner": "x"}).status_code == 400


def test_calibration_is_monotonic_and_centred():
    cal = scoring.PACKAGED.calibration
    assert isinstance(cal, scoring.Calibration)
    raw = [-1.0, 0.0, 0.1, cal.midpoint, 0.3, 0.4, 1.0]
    out = list(cal(raw))
    assert out == sorted(out) and all(0 < v < 1 for v in out)
    assert abs(float(cal(cal.midpoint)) - 0.5) < 1e-9
    assert list(scoring.Identity()([-0.5, 0.3, 1.2])) == [0.0, 0.3, 1.0]
