"""v8 memories: CRUD, permissions, the chunk lifecycle, filtered search, and retrieval in chat."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import cli_json
from tests.polling import wait_for
from tests.v8_helpers import V8

FORBIDDEN = {"error": "unauthorized"}
PASSAGES = {
    "ml": "机器学习是人工智能的一个分支，它让计算机从数据中学习规律，而无需明确编程。",
    "cook": "红烧肉的做法：五花肉切块，焯水后加冰糖炒糖色，再加酱油和料酒小火慢炖一小时。",
    "space": "The Apollo 11 mission landed the first humans on the Moon in July 1969.",
}


@pytest.fixture(scope="module")
def app(parley):
    return cli_json(parley.database_url, "integrations", "create", "--name", "kb", "--json")


@pytest.fixture(scope="module")
def admin(parley, app) -> V8:
    return V8(parley.url, app, user_id="boss", admin=True)


@pytest.fixture(scope="module")
def reader(parley, app) -> V8:
    return V8(parley.url, app, user_id="reader")


def make_memory(admin: V8, **body) -> dict:
    r = admin.http.post("/memories", json={"name": "kb", **body})
    assert r.status_code == 200, r.text
    return r.json()


def add(admin: V8, memory_id: str, **body) -> dict:
    r = admin.http.post(f"/memories/{memory_id}/contents", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def wait_embedded(admin: V8, memory_id: str, content_id: str, status: str = "completed", timeout: float = 60) -> list:
    last: list = []

    def done() -> list | None:
        last[:] = chunks = admin.http.get(f"/memories/{memory_id}/contents/{content_id}/chunks").json()
        return chunks if chunks and all(c["embedding_status"] == status for c in chunks) else None

    return wait_for(done, f"every chunk {status}", timeout, seen=lambda: last)


def last_chat(parley) -> dict:
    """The last chat request the upstream got (embedding workers of earlier tests may still be
    sending it embedding requests)."""
    return next(r for r in reversed(parley.upstream.rec.requests) if "messages" in r)


def search(client: V8, memory_id: str, what: str = "chunks", **body):
    r = client.http.post(f"/memories/{memory_id}/embeddings-search-{what}", json=body)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def filled(admin):
    memory = make_memory(admin, name="facts", description="facts")
    ids = {}
    for key, text in PASSAGES.items():
        ids[key] = add(admin, memory["id"], content=text, key=key, attrs={"topic": key})["content_id"]
    for cid in ids.values():
        wait_embedded(admin, memory["id"], cid)
    return memory, ids


def test_memory_crud_and_permissions(admin, reader, parley):
    r = reader.http.post("/memories", json={"name": "x"})
    assert (r.status_code, r.json()) == (403, FORBIDDEN)
    memory = make_memory(admin, name="我的知识库", description="重要信息的集合")
    assert set(memory) >= {"id", "name", "description", "embedding_model", "status", "created_at", "updated_at"}
    assert memory["embedding_model"] == "use-multilingual-v3" and memory["status"] == "enabled"
    assert memory["max_tokens_per_chunk"] == 1024 and memory["overlap_tokens"] == 0
    assert reader.http.get(f"/memories/{memory['id']}").json() == memory
    assert memory["id"] in [m["id"] for m in reader.http.get("/memories").json()]
    assert reader.http.put(f"/memories/{memory['id']}", json={"name": "n"}).json() == FORBIDDEN
    updated = admin.http.put(f"/memories/{memory['id']}", json={"name": "更新的知识库", "status": "disabled"}).json()
    assert updated["name"] == "更新的知识库" and updated["status"] == "disabled"
    assert reader.http.delete(f"/memories/{memory['id']}").status_code == 403
    assert admin.http.delete(f"/memories/{memory['id']}").json() == {"message": "记忆库删除成功"}
    assert reader.http.get(f"/memories/{memory['id']}").status_code == 404


def test_other_integrations_see_nothing(admin, filled, parley):
    memory, ids = filled
    other = V8(parley.url, cli_json(parley.database_url, "integrations", "create", "--name", "o", "--json"), admin=True)
    assert other.http.get(f"/memories/{memory['id']}").status_code == 404
    assert other.http.get(f"/memories/{memory['id']}/contents").status_code == 404
    assert other.http.post(f"/memories/{memory['id']}/embeddings-search-chunks", json={"query": "x"}).status_code == 404
    assert memory["id"] not in [m["id"] for m in other.http.get("/memories").json()]


def test_unknown_embedding_model_lists_the_available(admin):
    r = admin.http.post("/memories", json={"name": "x", "embedding_model": "nope"})
    assert r.status_code == 400
    assert "use-multilingual-v3" in r.json()["error"] and "text-embedding-3-small" in r.json()["error"]


def test_bad_memory_bodies(admin):
    assert admin.http.post("/memories", json={}).status_code == 400
    r = admin.http.post("/memories", json={"name": "x", "max_tokens_per_chunk": "big"})
    assert r.status_code == 400 and "max_tokens_per_chunk" in r.json()["error"]


def test_content_upsert_get_update_delete(admin, reader):
    memory = make_memory(admin)
    mid = memory["id"]
    first = add(admin, mid, content="这是一些文本内容", key="unique_key", attrs={"source": "document.pdf", "page": 1})
    assert first["success"] is True and first["message"] == "content created"
    again = add(admin, mid, content="更新后的文本", key="unique_key")
    assert again == {"success": True, "message": "content updated", "content_id": first["content_id"]}
    got = reader.http.get(f"/memories/{mid}/contents/{first['content_id']}").json()
    assert got["content"] == "更新后的文本" and got["key"] == "unique_key" and got["attrs"] is None
    assert got["content_type"] == "text" and set(got) >= {"id", "created_at", "updated_at"}
    r = admin.http.put(
        f"/memories/{mid}/contents/{first['content_id']}",
        json={"content": "# 标题", "content_type": "markdown", "key": "unique_key", "attrs": {"a": 1}},
    )
    assert r.json() == {"success": True, "message": "content updated"}
    assert reader.http.get(f"/memories/{mid}/contents", params={"type": "markdown"}).json()[0]["attrs"] == {"a": 1}
    assert reader.http.post(f"/memories/{mid}/contents", json={"content": "x"}).json() == FORBIDDEN
    assert reader.http.get(f"/memories/{mid}/contents/{first['content_id']}/chunks").json() == FORBIDDEN
    other = add(admin, mid, content="second", key="k2")
    assert admin.http.delete(f"/memories/{mid}/contents/_k2").json() == {"success": True, "message": "content deleted"}
    assert admin.http.get(f"/memories/{mid}/contents/{other['content_id']}").status_code == 404
    assert admin.http.delete(f"/memories/{mid}/contents/{first['content_id']}").status_code == 200
    assert admin.http.get(f"/memories/{mid}/contents").json() == []
    assert admin.http.delete(f"/memories/{mid}/contents/_missing").status_code == 404
    assert admin.http.post(f"/memories/{mid}/contents", json={"content_type": "text"}).status_code == 400
    assert admin.http.post(f"/memories/{mid}/contents", json={"content": "x", "content_type": "pdf"}).status_code == 400


def test_concurrent_creates_with_one_key_make_one_content(parley, app, admin):
    """Requests racing to create the same key all succeed: one creates it, the others replace
    it, as if they had come one after the other (the unique key index never shows as a 500)."""
    memory = make_memory(admin)
    mid = memory["id"]
    writers = [V8(parley.url, app, user_id="boss", admin=True) for _ in range(6)]
    for round_ in range(4):
        key = f"raced-{round_}"
        start = threading.Barrier(len(writers))

        def put(n: int, key: str = key, start: threading.Barrier = start):
            start.wait()
            return writers[n].http.post(f"/memories/{mid}/contents", json={"content": f"writer {n}", "key": key})

        with ThreadPoolExecutor(len(writers)) as pool:
            answers = list(pool.map(put, range(len(writers))))
        assert [r.status_code for r in answers] == [200] * len(writers), [r.text for r in answers]
        bodies = [r.json() for r in answers]
        assert sorted(b["message"] for b in bodies) == ["content created"] + ["content updated"] * (len(writers) - 1)
        assert len({b["content_id"] for b in bodies}) == 1
    listed = admin.http.get(f"/memories/{mid}/contents").json()
    assert sorted(c["key"] for c in listed) == [f"raced-{n}" for n in range(4)]
    assert all(c["content"].startswith("writer ") for c in listed)


def test_list_by_type_and_keywords(admin, reader):
    mid = make_memory(admin)["id"]
    add(admin, mid, content="关于机器学习的入门", content_type="text")
    add(admin, mid, content="Machine Learning in Python", content_type="markdown")
    add(admin, mid, content="人工智能与机器学习", content_type="markdown")
    listed = lambda **q: sorted(c["content"] for c in reader.http.get(f"/memories/{mid}/contents", params=q).json())  # noqa: E731
    assert listed(type="text") == ["关于机器学习的入门"]
    assert listed(keywords="机器学习") == ["人工智能与机器学习", "关于机器学习的入门"]
    assert listed(keywords="machine LEARNING") == ["Machine Learning in Python"]
    assert listed(type="markdown", keywords="人工智能") == ["人工智能与机器学习"]


def test_chunking_by_tokens(admin):
    mid = make_memory(admin, max_tokens_per_chunk=32, overlap_tokens=4)["id"]
    text = "".join(f"第{i}句话讲的是一个完整的意思。" for i in range(30))
    cid = add(admin, mid, content=text)["content_id"]
    chunks = admin.http.get(f"/memories/{mid}/contents/{cid}/chunks").json()
    assert len(chunks) > 3 and [c["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert all(c["token_count"] <= 32 for c in chunks)
    assert all(c["embedding_status"] in ("pending", "processing", "completed") for c in chunks)
    done = wait_embedded(admin, mid, cid)
    assert all(
        set(c) >= {"id", "content_id", "chunk_index", "content", "token_count", "embedding_status", "created_at"}
        for c in done
    )


def test_dense_search_with_calibrated_similarity(filled, reader):
    memory, ids = filled
    hits = search(reader, memory["id"], query="什么是机器学习？", min_similarity=0.5, limit=5)
    assert hits and hits[0]["content_id"] == ids["ml"]
    assert hits[0]["similarity"] >= 0.5 and hits[0]["content_key"] == "ml"
    assert hits[0]["content_attrs"] == {"topic": "ml"} and hits[0]["content_type"] == "text"
    assert [h["similarity"] for h in hits] == sorted((h["similarity"] for h in hits), reverse=True)
    assert set(hits[0]) == {
        "id",
        "content_id",
        "content_type",
        "content_key",
        "content_attrs",
        "chunk_index",
        "content",
        "token_count",
        "similarity",
        "created_at",
    }
    cross = search(reader, memory["id"], query="Who first walked on the moon?", min_similarity=0.0, limit=1)
    assert cross[0]["content_id"] == ids["space"]
    assert search(reader, memory["id"], query="什么是机器学习？", min_similarity=0.9999) == []
    assert len(search(reader, memory["id"], query="学习", min_similarity=0, limit=2)) == 2


@pytest.mark.parametrize("mode", ["hybrid", "lexical"])
def test_hybrid_and_lexical_modes(filled, reader, mode):
    memory, ids = filled
    hits = search(reader, memory["id"], query="红烧肉怎么做", min_similarity=0.3, mode=mode)
    assert hits[0]["content_id"] == ids["cook"]


def test_search_contents_ranks_by_best_chunk(filled, reader):
    memory, ids = filled
    hits = search(reader, memory["id"], "contents", query="Apollo moon landing", min_similarity=0.0, limit=2)
    assert hits[0]["id"] == ids["space"] and hits[0]["key"] == "space"
    assert set(hits[0]) == {"id", "content", "content_type", "key", "attrs", "similarity", "created_at", "updated_at"}
    assert len(hits) == 2


def test_content_filter_narrows_search(filled, reader):
    memory, ids = filled
    only = search(
        reader,
        memory["id"],
        query="机器学习",
        min_similarity=0.0,
        content_filter={"attrs": {"topic": {"$in": ["cook", "space"]}}},
    )
    assert {h["content_id"] for h in only} <= {ids["cook"], ids["space"]} and only
    assert (
        search(
            reader, memory["id"], query="机器学习", min_similarity=0.0, content_filter={"content_keywords": "APOLLO"}
        )[0]["content_id"]
        == ids["space"]
    )
    assert (
        search(reader, memory["id"], query="x", min_similarity=0.0, content_filter={"content_type": "markdown"}) == []
    )


def test_disabled_content_and_memory_are_skipped(admin, reader):
    mid = make_memory(admin)["id"]
    cid = add(admin, mid, content=PASSAGES["ml"], key="ml")["content_id"]
    wait_embedded(admin, mid, cid)
    assert search(reader, mid, query="机器学习", min_similarity=0.0)
    admin.http.put(
        f"/memories/{mid}/contents/{cid}", json={"content": PASSAGES["ml"], "key": "ml", "status": "disabled"}
    )
    assert search(reader, mid, query="机器学习", min_similarity=0.0) == []
    admin.http.put(f"/memories/{mid}/contents/{cid}", json={"content": PASSAGES["ml"], "key": "ml"})
    assert search(reader, mid, query="机器学习", min_similarity=0.0)
    admin.http.put(f"/memories/{mid}", json={"status": "disabled"})
    assert search(reader, mid, query="机器学习", min_similarity=0.0) == []


def test_search_bad_bodies(filled, reader):
    memory, _ = filled
    url = f"/memories/{memory['id']}/embeddings-search-chunks"
    assert reader.http.post(url, json={}).status_code == 400
    r = reader.http.post(url, json={"query": "x", "content_filter": {"attrs": {"a": {"$near": 1}}}})
    assert r.status_code == 400 and "$near" in r.json()["error"]
    assert reader.http.post(url, json={"query": "x", "mode": "magic"}).status_code == 400
    assert reader.http.post(url, json={"query": "x", "limit": 0}).status_code == 400


def test_updated_content_keeps_answering_until_new_chunks_are_ready(admin, reader, parley):
    mid = make_memory(admin, embedding_model="slow-embed")["id"]
    cid = add(admin, mid, content="old text", key="doc")["content_id"]
    wait_embedded(admin, mid, cid)
    with parley.upstream.rec.holding_slow_embeds():
        add(admin, mid, content="brand new [slow] text", key="doc")
        time.sleep(0.3)
        chunks = admin.http.get(f"/memories/{mid}/contents/{cid}/chunks").json()
        assert chunks[0]["content"] == "brand new [slow] text"
        assert chunks[0]["embedding_status"] in ("pending", "processing")
        during = search(reader, mid, query="anything", min_similarity=0.0)
        assert [h["content"] for h in during] == ["old text"]  # the old chunks still answer
    wait_embedded(admin, mid, cid)
    after = search(reader, mid, query="anything", min_similarity=0.0)
    assert [h["content"] for h in after] == ["brand new [slow] text"]  # swapped in one step


def test_embedding_errors_are_retried_then_kept(admin):
    mid = make_memory(admin, embedding_model="fail-embed")["id"]
    cid = add(admin, mid, content="cannot embed me")["content_id"]
    chunks = wait_embedded(admin, mid, cid, status="error", timeout=30)
    assert "embedding backend down" in chunks[0]["embedding_error"]


def test_content_create_returns_before_embedding(admin, parley):
    mid = make_memory(admin, embedding_model="slow-embed")["id"]
    with parley.upstream.rec.holding_slow_embeds():
        cid = add(admin, mid, content="queued [slow], not embedded on the request path")["content_id"]
        status = admin.http.get(f"/memories/{mid}/contents/{cid}/chunks").json()[0]["embedding_status"]
    assert status in ("pending", "processing")
    wait_embedded(admin, mid, cid)


# --- retrieval in chat ------------------------------------------------------------------------


def test_chat_retrieval_grounds_the_answer_and_returns_references(filled, parley, app):
    memory, ids = filled
    user = V8(parley.url, app, user_id="asker")
    conv = user.conversation(
        settings={"prompt": "你是助手"}, reference_settings={"memories": {"collections": [memory["id"]], "limit": 2}}
    )
    r = user.send(conv["id"], content="红烧肉怎么做？", stream=False)
    assert r.status_code == 200, r.text
    reply = r.json()
    refs = reply["references"]
    assert refs[0]["index"] == 1 and refs[0]["content_id"] == ids["cook"] and refs[0]["similarity"] >= 0.5
    sent = last_chat(parley)["messages"]
    assert sent[0] == {"role": "system", "content": "你是助手"}
    assert (
        sent[1]["role"] == "system" and "[1] " + PASSAGES["cook"] in sent[1]["content"] and "cite" in sent[1]["content"]
    )
    assert user.messages(conv["id"])[-1]["references"] == refs
    events = user.events(conv["id"], content="红烧肉要炖多久？")
    assert events[0]["type"] == 1 and events[0]["references"][0]["content_id"] == ids["cook"]
    assert events[-1] == "[DONE]" and events[-2]["type"] == 0 and events[-2]["finish_reason"] == "stop"


def test_chat_unmatch_message_replies_without_a_model(filled, parley, app):
    memory, _ = filled
    user = V8(parley.url, app, user_id="asker2")
    conv = user.conversation(
        reference_settings={
            "memories": {
                "collections": [memory["id"]],
                "min_similarity": 0.99,
                "unmatch_message": "抱歉，知识库中没有相关内容。",
            }
        }
    )
    before = len(parley.upstream.rec.requests)
    reply = user.send(conv["id"], content="量子色动力学的渐近自由是什么？", stream=False).json()
    assert reply["content"] == "抱歉，知识库中没有相关内容。" and reply["finish_reason"] == "stop"
    events = user.events(conv["id"], content="还有别的吗")
    assert events[0]["content"] == "抱歉，知识库中没有相关内容。" and events[-1] == "[DONE]"
    assert len(parley.upstream.rec.requests) == before  # no model was called
    assert [m["role"] for m in user.messages(conv["id"])] == ["user", "assistant", "user", "assistant"]


def test_chat_without_a_match_and_without_unmatch_message_calls_the_model(filled, parley, app):
    memory, _ = filled
    user = V8(parley.url, app, user_id="asker3")
    conv = user.conversation(reference_settings={"memories": {"collections": [memory["id"]], "min_similarity": 0.99}})
    reply = user.send(conv["id"], content="hello", stream=False).json()
    assert reply["content"] == "echo: hello" and "references" not in reply
    assert all(m["role"] != "system" for m in last_chat(parley)["messages"])


def test_a_restart_mid_embedding_resumes_the_work(parley, tmp_path):
    from parley.app import create_app
    from tests.conftest import fresh_database, test_settings
    from tests.servers import ThreadedServer

    if parley.database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}"
    else:
        pg = parley.database_url.split("?")[0].rsplit("/", 1)[0].replace("+asyncpg", "") + "/postgres"
        query = parley.database_url.split("?", 1)[1]
        url = fresh_database(f"{pg}?{query}")
    settings = test_settings(url, parley.upstream.url)
    with parley.upstream.rec.holding_slow_embeds(), ThreadedServer(create_app(settings)) as first:
        app = cli_json(url, "integrations", "create", "--name", "restart", "--json")
        admin = V8(first.url, app, admin=True)
        mid = make_memory(admin, embedding_model="slow-embed")["id"]
        cid = add(admin, mid, content="survives a restart [slow]")["content_id"]
        wait_for(
            lambda: (
                admin.http.get(f"/memories/{mid}/contents/{cid}/chunks").json()[0]["embedding_status"] == "processing"
            ),
            "the chunk taken up",
            10,
        )
    # The server stopped mid-embedding: the chunk is left "processing" under a lease.
    with ThreadedServer(create_app(settings)) as second:
        admin = V8(second.url, app, admin=True)
        assert admin.http.get(f"/memories/{mid}/contents/{cid}/chunks").json()[0]["embedding_status"] == "processing"
        wait_embedded(admin, mid, cid, timeout=30)
        hits = search(admin, mid, query="restart", min_similarity=0.0)
        assert [h["content_id"] for h in hits] == [cid]


def test_cli_ingest_updates_instead_of_duplicating(admin, app, parley, tmp_path):
    from tests.conftest import cli
    from tests.fixtures import ZH, docx_file

    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# 标题\n\n机器学习让计算机从数据中学习。", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("Apollo 11 landed on the Moon.", encoding="utf-8")
    (folder / "report.docx").write_bytes(docx_file(ZH))
    (folder / "skip.bin").write_bytes(b"\0\1")
    memory = cli_json(parley.database_url, "memories", "create", "--app-id", app["app_id"], "--name", "docs", "--json")
    done = cli(parley.database_url, "memories", "ingest", memory["id"], str(folder))
    assert done.returncode == 0, done.stderr
    assert "3 created" in done.stdout
    # Embedded by the CLI or by the server's worker, whichever claimed the chunks: the CLI
    # reports until all are done, so they are when it returns.
    total = sum(
        len(admin.http.get(f"/memories/{memory['id']}/contents/{c['id']}/chunks").json())
        for c in admin.http.get(f"/memories/{memory['id']}/contents").json()
    )
    assert f"Embedded {total}/{total} chunks" in done.stdout
    contents = admin.http.get(f"/memories/{memory['id']}/contents").json()
    for c in contents:
        chunks = admin.http.get(f"/memories/{memory['id']}/contents/{c['id']}/chunks").json()
        assert chunks and all(k["embedding_status"] == "completed" for k in chunks), chunks
    assert sorted(c["key"] for c in contents) == sorted(
        str(p) for p in (folder / "a.md", folder / "sub" / "b.txt", folder / "report.docx")
    )
    assert next(c for c in contents if c["key"].endswith("a.md"))["content_type"] == "markdown"
    (folder / "a.md").write_text("# 标题\n\n改过的内容。", encoding="utf-8")
    again = cli(parley.database_url, "memories", "ingest", memory["id"], str(folder), "--no-embed")
    assert "1 updated" in again.stdout and "2 unchanged" in again.stdout
    assert len(admin.http.get(f"/memories/{memory['id']}/contents").json()) == 3
    hits = search(admin, memory["id"], query="Moon landing", min_similarity=0.0, limit=1)
    assert hits[0]["content_key"].endswith("b.txt")


def test_project_retrieves_from_its_memories(filled, parley):
    memory, ids = filled
    made = cli_json(
        parley.database_url,
        "projects",
        "create",
        "--name",
        "rag",
        "--model",
        "gpt-4o-mini",
        "--memory",
        memory["id"],
        "--memory-limit",
        "1",
        "--json",
    )
    base = f"/api/project/{made['id']}/integration/api"
    with parley.client(key=made["api_key"]) as http:
        body = http.post(
            base + "/chat/completions", json={"messages": [{"role": "user", "content": "红烧肉怎么做"}]}
        ).json()
    assert body["references"][0]["content_id"] == ids["cook"] and len(body["references"]) == 1
    sent = last_chat(parley)["messages"]
    assert sent[0]["role"] == "system" and PASSAGES["cook"] in sent[0]["content"]
    strict = cli_json(
        parley.database_url,
        "projects",
        "create",
        "--name",
        "rag2",
        "--memory",
        memory["id"],
        "--memory-min-similarity",
        "0.99",
        "--unmatch-message",
        "没有找到。",
        "--json",
    )
    base = f"/api/project/{strict['id']}/integration/api"
    before = len(parley.upstream.rec.requests)
    with parley.client(key=strict["api_key"]) as http:
        r = http.post(base + "/chat/completions", json={"messages": [{"role": "user", "content": "随便问问"}]})
        assert r.json()["choices"][0]["message"]["content"] == "没有找到。"
        streamed = http.post(
            base + "/chat/completions",
            headers={"x-session-id": r.json()["session_id"]},
            json={"messages": [{"role": "user", "content": "再问"}], "stream": True},
        ).text
    assert "没有找到。" in streamed and streamed.rstrip().endswith("data: [DONE]")
    assert len(parley.upstream.rec.requests) == before


def test_upstream_embedding_model_with_its_configured_calibration(admin, reader):
    mid = make_memory(admin, embedding_model="text-embedding-3-small")["id"]
    cid = add(admin, mid, content="abcd")["content_id"]  # the double embeds a text as [len, 1, 0]
    wait_embedded(admin, mid, cid)
    hits = search(reader, mid, query="wxyz", min_similarity=0.0)  # same length: cosine 1.0
    assert abs(hits[0]["similarity"] - 1 / (1 + 2.718281828459045**-1.0)) < 1e-4  # midpoint 0.9, slope 10


def test_replacing_a_content_with_a_key_another_holds_is_a_409_that_changes_nothing(admin):
    mid = make_memory(admin)["id"]
    first = add(admin, mid, content="first", key="one")["content_id"]
    add(admin, mid, content="second", key="two")
    r = admin.http.put(f"/memories/{mid}/contents/{first}", json={"content": "changed", "key": "two"})
    assert r.status_code == 409 and r.json() == {"error": "Another content of this memory has the key 'two'"}
    kept = admin.http.get(f"/memories/{mid}/contents/{first}").json()
    assert (kept["key"], kept["content"]) == ("one", "first")
