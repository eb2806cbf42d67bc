"""Retrieval that finds the answer however the question is worded, with one meaning for 0.5.

Over real HTTP: paraphrased, cross-lingual and mistyped questions retrieved in v8 chat at the
default min_similarity; a passage sharing nothing with the question below 0.1 in every mode;
question words matching nothing; ``reference_settings.memories.mode`` and a project's
``memories.mode`` choosing how chat searches; ``parley memories calibrate``.
"""

from __future__ import annotations

import pytest

from parley.memory.calibrate import cloze
from tests.conftest import cli, cli_json
from tests.test_memories import add, make_memory, search, wait_embedded
from tests.v8_helpers import V8

LEAVE = "年假为每年十五天，需提前两周申请。"  # the README's example content
PASSAGES = {
    "leave": LEAVE,
    "intern": "实习生每月可申请一天带薪假，不享受年假；请假需提前三天告知导师，并在人事系统中登记。",
    "marriage": "员工依法登记结婚可享受婚假十天（含法定三天及公司额外给予的七天），须在领证后一年内一次性休完。",
    "online": "在网上商城购买的商品，自签收之日起七天内可无理由退货，商品及包装需保持完好；"
    "我们收到退货后三个工作日内原路退款。",
    "store": "在实体门店购买的商品，可在十五天内凭购物小票到任意门店换货，但不支持退还现金。",
    "jury": "Employees called for jury duty receive full pay for up to 10 working days; "
    "give HR a copy of the summons before the first day of service.",
    "witness": "Employees summoned as witnesses in a court case get up to 3 days of paid leave; "
    "attach a copy of the subpoena to the leave request.",
    "moon": "The Apollo 11 mission landed the first humans on the Moon in July 1969.",
}
MODES = ("dense", "lexical", "hybrid")


@pytest.fixture(scope="module")
def app(parley):
    return cli_json(parley.database_url, "integrations", "create", "--name", "retrieval", "--json")


@pytest.fixture(scope="module")
def admin(parley, app) -> V8:
    return V8(parley.url, app, user_id="kb-admin", admin=True)


@pytest.fixture(scope="module")
def handbook(admin):
    memory = make_memory(admin, name="handbook")
    ids = {key: add(admin, memory["id"], content=text, key=key)["content_id"] for key, text in PASSAGES.items()}
    for cid in ids.values():
        wait_embedded(admin, memory["id"], cid)
    return memory["id"], ids


def ask(user: V8, conversation_id: str, question: str) -> dict:
    r = user.send(conversation_id, content=question, stream=False)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_readme_example_is_grounded_at_the_default_threshold(handbook, parley, app):
    mid, _ = handbook
    user = V8(parley.url, app, user_id="readme")
    conv = user.conversation(reference_settings={"memories": {"collections": [mid]}})
    assert conv["reference_settings"]["memories"]["min_similarity"] == 0.5
    assert "mode" not in conv["reference_settings"]["memories"]  # the documented defaults, unchanged
    reply = ask(user, conv["id"], "年假有几天？")
    refs = reply["references"]
    assert refs[0]["content_key"] == "leave" and refs[0]["content"] == LEAVE and refs[0]["similarity"] >= 0.5
    assert all(r["content_key"] != "moon" for r in refs)
    # The last chat request (another test's content may still be sending embedding requests).
    system = next(r for r in reversed(parley.upstream.rec.requests) if "messages" in r)["messages"][0]
    assert system["role"] == "system" and "[1] " + LEAVE in system["content"]


@pytest.mark.parametrize(
    ("question", "key"),
    [
        ("结了婚公司给放几天？", "marriage"),  # a paraphrase: no word in common with the passage
        ("网上下单买的东西不想要了，还能退吗？", "online"),  # beside its near-duplicate ("store")
        ("How long is marriage leave, and by when must it be taken?", "marriage"),  # English → Chinese
        ("阿波罗11号是哪一年登上月球的？", "moon"),  # Chinese → English
        ("年价有几天", "leave"),  # a typo: 假 → 价
        ("jurry duty pay", "jury"),
    ],
)
def test_chat_finds_the_passage_however_the_question_is_worded(handbook, parley, app, question, key):
    mid, ids = handbook
    user = V8(parley.url, app, user_id="asker")
    conv = user.conversation(reference_settings={"memories": {"collections": [mid], "limit": 3}})
    refs = ask(user, conv["id"], question)["references"]
    assert refs[0]["content_id"] == ids[key] and refs[0]["similarity"] >= 0.5, refs
    assert user.messages(conv["id"])[-1]["references"] == refs


@pytest.mark.parametrize("mode", MODES)
def test_a_passage_sharing_nothing_scores_below_0_1_in_every_mode(handbook, admin, mode):
    mid, ids = handbook
    hits = search(admin, mid, query="年假有几天？", min_similarity=0.0, limit=100, mode=mode)
    by_key = {h["content_key"]: h["similarity"] for h in hits}
    assert hits[0]["content_key"] == "leave" and by_key["leave"] >= 0.5
    assert by_key.get("moon", 0.0) < 0.1, by_key
    assert [h["similarity"] for h in hits] == sorted(by_key.values(), reverse=True)


def test_question_words_match_nothing(admin):
    mid = make_memory(admin, name="faq")["id"]
    texts = {
        "phone": "手机丢了怎么办？先打电话给运营商挂失。",
        "keys": "钥匙忘带了怎么办？请联系物业开门。",
        "refund": "What is the refund policy? Refunds take five days.",
        "password": "How do I reset my password? Use the link in the email.",
    }
    for key, text in texts.items():
        wait_embedded(admin, mid, add(admin, mid, content=text, key=key)["content_id"])

    def lexical(query: str) -> dict[str, float]:
        hits = search(admin, mid, query=query, min_similarity=0.0, limit=10, mode="lexical")
        return {h["content_key"]: h["similarity"] for h in hits}

    found = lexical("手机丢了怎么办")
    assert max(found, key=found.get) == "phone" and found["phone"] >= 0.5
    assert found["keys"] < 0.1  # it shares only 怎么办, a question word
    assert max(lexical("怎么办？多少？什么？").values()) < 0.1
    found = lexical("how do I get a refund")
    assert max(found, key=found.get) == "refund" and found["password"] < 0.1  # "how do I" is no match
    assert search(admin, mid, query="what is how do", min_similarity=0.1, mode="lexical") == []


def test_the_conversation_chooses_the_mode(handbook, parley, app):
    mid, ids = handbook
    user = V8(parley.url, app, user_id="chooser")
    question = "How long is marriage leave, and by when must it be taken?"  # its passage is Chinese
    conv = user.conversation(reference_settings={"memories": {"collections": [mid], "mode": "lexical"}})
    assert conv["reference_settings"]["memories"]["mode"] == "lexical"
    reply = ask(user, conv["id"], question)  # lexical search cannot cross languages
    assert ids["marriage"] not in [r["content_id"] for r in reply.get("references", [])]
    r = user.http.put(f"/chat/conversations/{conv['id']}", json={"reference_settings": {"memories": {"mode": "dense"}}})
    assert r.status_code == 200, r.text
    stored = user.http.get(f"/chat/conversations/{conv['id']}").json()["reference_settings"]["memories"]
    assert stored["mode"] == "dense" and stored["collections"] == [mid]
    assert ask(user, conv["id"], question)["references"][0]["content_id"] == ids["marriage"]


def test_a_bad_mode_is_a_400_that_changes_nothing(handbook, parley, app):
    mid, _ = handbook
    user = V8(parley.url, app, user_id="bad-mode")
    r = user.http.post("/chat/conversations", json={"reference_settings": {"memories": {"mode": "fuzzy"}}})
    assert r.status_code == 400 and set(r.json()) == {"error"}
    assert "reference_settings.memories.mode" in r.json()["error"]
    conv = user.conversation(reference_settings={"memories": {"collections": [mid], "mode": "dense"}})
    r = user.http.put(f"/chat/conversations/{conv['id']}", json={"reference_settings": {"memories": {"mode": 3}}})
    assert r.status_code == 400 and "reference_settings.memories.mode" in r.json()["error"]
    assert user.http.get(f"/chat/conversations/{conv['id']}").json()["reference_settings"] == conv["reference_settings"]
    assert [c["id"] for c in user.http.get("/chat/conversations").json()] == [conv["id"]]


def test_a_project_chooses_the_mode(handbook, parley):
    mid, ids = handbook
    made = cli_json(
        parley.database_url, "projects", "create", "--name", "kb", "--memory", mid, "--memory-mode", "lexical", "--json"
    )
    shown = cli_json(parley.database_url, "projects", "show", made["id"])
    assert shown["memories"]["mode"] == "lexical" and shown["memories"]["collections"] == [mid]
    url = f"/api/project/{made['id']}/integration/api/chat/completions"
    question = {"messages": [{"role": "user", "content": "How long is marriage leave?"}]}
    with parley.client(key=made["api_key"]) as http:
        body = http.post(url, json=question).json()
        found = [r["content_id"] for r in body.get("references", [])]
        assert ids["marriage"] not in found  # lexical: the English question shares no word with the passage
        updated = cli(parley.database_url, "projects", "update", made["id"], "--memory-mode", "hybrid")
        assert updated.returncode == 0, updated.stderr
        body = http.post(url, json=question).json()
    assert body["references"][0]["content_id"] == ids["marriage"]
    bad = cli(parley.database_url, "projects", "update", made["id"], "--memory-mode", "fuzzy")
    assert bad.returncode == 1 and "memories.mode" in bad.stderr
    assert cli_json(parley.database_url, "projects", "show", made["id"])["memories"]["mode"] == "hybrid"


PARAGRAPHS = [
    f"第{i}号仓库位于城市的{side}边，面积为{100 + i * 7}平方米。仓库每天早上八点开门，晚上六点关门。"
    f"进入仓库需要出示工作证，并在门口登记姓名和时间。"
    for i, side in enumerate(["东", "西", "南", "北"] * 4)
]


def test_calibrate_reports_on_a_memorys_own_contents(admin, app, parley, tmp_path):
    mid = make_memory(admin, name="warehouses")["id"]
    for i, text in enumerate(PARAGRAPHS):
        wait_embedded(admin, mid, add(admin, mid, content=text, key=f"w{i}")["content_id"])
    fit = cli_json(parley.database_url, "memories", "calibrate", mid, "--json")
    assert fit["model"] == "use-multilingual-v3" and fit["applies_to"] == "packaged"
    assert fit["pairs"] == len(PARAGRAPHS)
    assert 0 <= fit["right_now"] <= 1 and 0 <= fit["wrong_now"] <= 1 and fit["slope"] >= 1
    upstream = make_memory(admin, name="upstream", embedding_model="text-embedding-3-small")["id"]
    for i, text in enumerate(PARAGRAPHS):
        wait_embedded(admin, upstream, add(admin, upstream, content=text, key=f"w{i}")["content_id"])
    config = tmp_path / "parley.yaml"  # the CLI needs to know the upstream embedding model too
    config.write_text(
        f"providers: [{{name: up, type: openai, base_url: '{parley.upstream.url}/v1'}}]\n"
        "models: [{name: text-embedding-3-small, provider: up, kind: embedding}]\n"
    )
    done = cli(parley.database_url, "memories", "calibrate", upstream, "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "name: text-embedding-3-small" in done.stdout and "similarity: {midpoint:" in done.stdout
    few = make_memory(admin, name="few")["id"]
    wait_embedded(admin, few, add(admin, few, content="一句话。", key="one")["content_id"])
    refused = cli(parley.database_url, "memories", "calibrate", few)
    assert refused.returncode == 1 and "at least 10" in refused.stderr
    assert cli(parley.database_url, "memories", "calibrate", "no-such-memory").returncode == 1


def test_calibration_questions_from_text_without_sentence_punctuation():
    # Abstracts stored as wrapped lines under a title: no sentence ends, yet every chunk can
    # still ask for itself (a line out of it asks for the rest); sentences still come first.
    lines = [
        f"cooling tower number {i}  the water flow of tower {i} was measured\nover a season of {i + 3} months"
        for i in range(12)
    ]
    pairs = cloze(lines, 50)
    assert len(pairs) == len(lines)
    for question, answer in pairs:
        source = next(t for t in lines if question in t)
        rest = " ".join(p for p in source.replace("\n", "  ").split("  ") if p != question)
        assert answer == rest
    first, second = "一号冷却塔位于厂区的东侧，靠近二号锅炉房。", "它的水流量由值班工程师每个季度测量一次并记录在案。"
    sentences = cloze([first + second] * 3, 50)
    assert len(sentences) == 3 and all(pair in ((first, second), (second, first)) for pair in sentences)
    assert cloze(["one line without a break"] * 12, 50) == []


def test_a_repeated_filter_sees_changed_attributes(admin):
    mid = make_memory(admin, name="filtered")["id"]
    pork = "红烧肉的做法：五花肉切块，小火慢炖一小时。"
    a = add(admin, mid, content=pork, key="a", attrs={"lang": "zh"})["content_id"]
    b = add(admin, mid, content="Braised pork belly: simmer slowly for an hour.", key="b", attrs={"lang": "en"})
    for cid in (a, b["content_id"]):
        wait_embedded(admin, mid, cid)
    only_zh = {"attrs": {"lang": "zh"}}
    for mode in MODES:
        hits = search(admin, mid, query="红烧肉怎么做", min_similarity=0.0, content_filter=only_zh, mode=mode)
        assert [h["content_key"] for h in hits] == ["a"], mode
    r = admin.http.put(
        f"/memories/{mid}/contents/{b['content_id']}",
        json={"content": "Braised pork belly: simmer slowly for an hour.", "key": "b", "attrs": {"lang": "zh"}},
    )
    assert r.status_code == 200, r.text
    for mode in MODES:  # the same filter again: the changed attributes count at once
        hits = search(admin, mid, query="红烧肉怎么做", min_similarity=0.0, content_filter=only_zh, mode=mode)
        assert sorted(h["content_key"] for h in hits) == ["a", "b"], mode
    admin.http.put(
        f"/memories/{mid}/contents/{a}",
        json={"content": pork, "key": "a", "attrs": {"lang": "zh"}, "status": "disabled"},
    )
    for mode in MODES:
        hits = search(admin, mid, query="红烧肉怎么做", min_similarity=0.0, content_filter=only_zh, mode=mode)
        assert [h["content_key"] for h in hits] == ["b"], mode


def test_the_packaged_model_gives_the_package_own_vectors():
    """Parley's forward pass (first layer kept per token, convolutions in onnxruntime with int8
    weights, in float32, or in numpy without onnxruntime) computes what the package's own encoder
    computes, for short and long texts in one batch (one longer than a forward pass's token
    budget included)."""
    import numpy as np

    from parley.providers import local_embeddings
    from parley.providers.local_embeddings import TOKEN_BUDGET, LocalEmbedder

    texts = [*PASSAGES.values(), "年假" * TOKEN_BUDGET, "x", "", "年假为每年十五天？" * 3]
    embedder = LocalEmbedder(workers=1)
    model = embedder._load()
    reference = np.asarray(model.encode(texts))
    forward = embedder._forward
    assert forward is not None and forward.convolutions is not None
    for _ in range(2):  # the second time every token's first layer comes from what was kept
        mine = np.asarray(embedder.embed_sync(texts))
        assert mine.shape == (len(texts), 512)
        assert float((mine * reference).sum(axis=1).min()) > 0.999
        # and a text's vector does not depend on the texts embedded with it
        alone = np.asarray([embedder.embed_sync([t])[0] for t in texts])
        assert np.array_equal(alone, mine)
    forward.convolutions = local_embeddings._convolutions(forward.b, forward.use, int8=False)
    assert float(np.abs(np.asarray(embedder.embed_sync(texts)) - reference).max()) < 1e-5
    forward.convolutions = None
    assert float(np.abs(np.asarray(embedder.embed_sync(texts)) - reference).max()) < 1e-5


def test_the_int8_first_pass_finds_what_the_exact_search_finds():
    """On a memory large enough for coarse.py's int8 first pass, the error bound holds and the
    candidates it leaves are scored exactly: dense and hybrid results (with and without a
    filter) equal those of scoring every chunk in float64."""
    import numpy as np

    from parley.memory import scoring
    from parley.memory.bm25 import Lexical
    from parley.memory.coarse import MIN_ROWS, Coarse
    from parley.memory.index import LoadedIndex
    from parley.memory.search import Searcher

    rng = np.random.default_rng(7)
    n = MIN_ROWS + 5000
    base = rng.normal(size=(500, 512)).astype(np.float32)
    vectors = base[rng.integers(0, 500, n)] + rng.normal(0, 0.05, (n, 512)).astype(np.float32)  # near-duplicates
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    coarse = Coarse.build(vectors)
    assert coarse is not None
    ids = np.array([f"c{i}" for i in range(n)], dtype=object)
    index = LoadedIndex(1, ids, np.arange(n, dtype=np.int32), {}, None, vectors, vectors.sum(axis=0), coarse=coarse)  # type: ignore[arg-type]
    profile = scoring.PACKAGED
    for trial in range(30):
        q = vectors[rng.integers(0, n)] + rng.normal(0, 0.3, 512).astype(np.float32)
        q /= np.linalg.norm(q)
        exact = vectors.astype(np.float64) @ q.astype(np.float64)
        approx, bound = coarse.scan(q)
        assert np.all(np.abs(approx - exact) <= bound)
        mask = rng.random(n) < (1.0 if trial % 2 else 0.1)
        score = np.where(rng.random(n) < 0.01, rng.random(n), 0.0).astype(np.float32)
        lexical = Lexical(score, rng.choice([0.5, 1.0], n).astype(np.float32), float(score.sum()))
        mean = scoring.shrunk_mean(float(q @ index.vector_sum), n)
        for lex in (None, lexical):
            at, cos = Searcher._dense_candidates(profile, index, mask, lex, q, mean, 10, True)
            logit = scoring.dense_logit(profile, cos, mean)
            if lex is not None:
                logit = Searcher._fuse(index, mask, lex, logit, at)
            found = np.sort(scoring.sigmoid(logit))[::-1][:10]
            full = scoring.dense_logit(profile, exact, mean)
            if lex is not None:
                full = Searcher._fuse(index, mask, lex, full, np.arange(n))
            want = np.sort(scoring.sigmoid(full)[mask])[::-1][:10]
            assert np.allclose(found, want, atol=1e-6), (trial, lex is None)
