"""/v1/responses' file_search tool over Parley's memories (knowledge bases), on both databases:
results and citations, whole and streamed, and the search's filters and score threshold."""

from __future__ import annotations

import pytest

from tests.conftest import cli_json
from tests.polling import wait_for
from tests.responses_helpers import sdk
from tests.v8_helpers import V8

PASSAGES = {
    "cook": "红烧肉的做法：五花肉切块，焯水后加冰糖炒糖色，再加酱油和料酒小火慢炖一小时。",
    "space": "The Apollo 11 mission landed the first humans on the Moon in July 1969.",
}


@pytest.fixture(scope="module")
def memory(parley):
    """A memory (knowledge base) with two contents, embedded."""
    app = cli_json(parley.database_url, "integrations", "create", "--name", "files", "--json")
    admin = V8(parley.url, app, user_id="ops", admin=True)
    made = admin.http.post("/memories", json={"name": "files"}).json()
    ids = {}
    for key, text in PASSAGES.items():
        body = {"content": text, "key": key, "attrs": {"topic": key}}
        ids[key] = admin.http.post(f"/memories/{made['id']}/contents", json=body).json()["content_id"]

    def embedded() -> bool:
        for cid in ids.values():
            chunks = admin.http.get(f"/memories/{made['id']}/contents/{cid}/chunks").json()
            if not chunks or any(c["embedding_status"] != "completed" for c in chunks):
                return False
        return True

    wait_for(embedded, "the contents to be embedded", seconds=120)
    return made["id"], ids


def test_file_search_searches_parley_memories_and_cites_them(parley, memory):
    memory_id, ids = memory
    client = sdk(parley)
    tool = {"type": "file_search", "vector_store_ids": [memory_id], "max_num_results": 2}
    # Any score: the citation marker the echo model repeats makes the question a poorer match.
    cited = {**tool, "ranking_options": {"score_threshold": 0}}
    res = client.responses.create(
        model="gpt-4o-mini", input="红烧肉怎么做？[1]", tools=[cited], include=["file_search_call.results"]
    )
    search, message = res.output
    assert search.type == "file_search_call" and search.id.startswith("fs_") and search.status == "completed"
    assert search.queries == ["红烧肉怎么做？[1]"]
    best = search.results[0]
    assert (best.file_id, best.filename, best.text, best.attributes) == (
        ids["cook"],
        "cook",
        PASSAGES["cook"],
        {"topic": "cook"},
    )
    assert [r.score for r in search.results] == sorted((r.score for r in search.results), reverse=True)
    sent = parley.upstream.rec.last()
    assert sent["messages"][0]["role"] == "system" and "[1] " + PASSAGES["cook"] in sent["messages"][0]["content"]
    assert "tools" not in sent  # the search is Parley's: the model gets its results, not the tool
    text = message.content[0]
    assert text.text == "echo: 红烧肉怎么做？[1]"
    assert [a.model_dump() for a in text.annotations] == [
        {"type": "file_citation", "file_id": ids["cook"], "filename": "cook", "index": text.text.index("[1]")}
    ]
    assert res.tools[0].type == "file_search" and res.tools[0].vector_store_ids == [memory_id]

    relevant = client.responses.create(
        model="gpt-4o-mini", input="红烧肉怎么做？", tools=[tool], include=["file_search_call.results"]
    )
    assert relevant.output[0].results[0].file_id == ids["cook"]  # above the default threshold
    quiet = client.responses.create(model="gpt-4o-mini", input="红烧肉怎么做？", tools=[tool])
    assert quiet.output[0].type == "file_search_call" and quiet.output[0].results is None  # not included
    after = client.responses.create(model="gpt-4o-mini", previous_response_id=quiet.id, input="thanks")
    assert after.output_text == "echo: thanks"  # an earlier search in the chain is not sent to the model

    with client.responses.stream(model="gpt-4o-mini", input="红烧肉怎么做？[1]", tools=[cited]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.type for e in events[2:7]] == [
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ]
    added = [e for e in events if e.type == "response.output_text.annotation.added"]
    assert [e.annotation.file_id for e in added] == [ids["cook"]]
    assert final.output[1].content[0].annotations[0].file_id == ids["cook"]


def test_file_search_filters_and_score_threshold(parley, memory):
    memory_id, ids = memory
    client = sdk(parley)

    def found(filters) -> set[str]:
        tool = {
            "type": "file_search",
            "vector_store_ids": [memory_id],
            "filters": filters,
            "ranking_options": {"score_threshold": 0},
        }
        res = client.responses.create(
            model="gpt-4o-mini", input="红烧肉怎么做？", tools=[tool], include=["file_search_call.results"]
        )
        return {r.file_id for r in res.output[0].results}

    assert found({"type": "eq", "key": "topic", "value": "space"}) == {ids["space"]}
    assert found({"type": "ne", "key": "topic", "value": "space"}) == {ids["cook"]}
    either = {"type": "or", "filters": [{"type": "eq", "key": "topic", "value": v} for v in ("space", "cook")]}
    assert found(either) == {ids["space"], ids["cook"]}
    assert found({"type": "in", "key": "topic", "value": ["nothing"]}) == set()
