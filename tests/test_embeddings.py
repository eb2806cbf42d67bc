"""/v1/embeddings with token-id input, as LangChain's OpenAIEmbeddings sends it: never wrong vectors."""

from __future__ import annotations

import numpy as np
import openai
import pytest
import tiktoken

from parley import tokens

TEXTS = ["Machine learning lets computers learn from data.", "年假为每年十五天，需提前两周申请。"]


@pytest.fixture(scope="module")
def cl100k() -> tiktoken.Encoding:
    # The vocabulary of OpenAI's embedding models; its file ships offline (see parley/tokens.py).
    tokens._install_offline_files()
    return tiktoken.get_encoding("cl100k_base")


def sdk(parley) -> openai.OpenAI:
    return openai.OpenAI(base_url=parley.url + "/v1", api_key=parley.key, max_retries=0)


def vectors(parley, model: str, input_) -> np.ndarray:
    res = sdk(parley).embeddings.create(model=model, input=input_)
    return np.array([d.embedding for d in sorted(res.data, key=lambda d: d.index)])


def test_local_model_embeds_token_ids_as_the_text_they_encode(parley, cl100k):
    from_text = vectors(parley, "use-multilingual-v3", TEXTS)
    ids = [cl100k.encode(t) for t in TEXTS]
    from_ids = vectors(parley, "use-multilingual-v3", ids)
    assert np.allclose(from_ids, from_text, atol=1e-5)
    one = vectors(parley, "use-multilingual-v3", ids[0])  # a single flat array of ids
    assert np.allclose(one[0], from_text[0], atol=1e-5)


def test_local_model_usage_counts_the_ids_sent(parley, cl100k):
    ids = [cl100k.encode(t) for t in TEXTS]
    with parley.client() as http:
        r = http.post("/v1/embeddings", json={"model": "use-multilingual-v3", "input": ids})
    assert r.status_code == 200
    assert r.json()["usage"] == {"prompt_tokens": sum(map(len, ids)), "total_tokens": sum(map(len, ids))}


def test_openai_upstream_gets_the_token_ids_unchanged(parley, cl100k):
    rec = parley.upstream.rec
    ids = [cl100k.encode(t) for t in TEXTS] + [[150_000, 7]]  # ids of the upstream's vocabulary, not ours
    with parley.client() as http:
        r = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": ids})
        assert r.status_code == 200, r.text
        assert rec.last() == {"model": "text-embedding-3-small", "input": ids}
        assert [d["embedding"][0] for d in r.json()["data"]] == [float(len(i)) for i in ids]
        r = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": ids[0]})
        assert r.status_code == 200, r.text
        assert rec.last()["input"] == [ids[0]]


@pytest.mark.parametrize(
    "input_",
    [
        [1_000_000],  # past the vocabulary
        [2**40],  # past any vocabulary
        [[9906, 100_256]],  # an id the vocabulary leaves unassigned
        [-1],
        [[1, 2], [3, -4]],
        ["a", 1],
        [[1], "a"],
        [1, [2]],
        [True, 1],
        [1.5],
        [[]],
        [],
        "",
        ["ok", ""],
        None,
        {"text": "x"},
    ],
)
def test_undecodable_input_is_a_400_naming_input(parley, input_):
    with parley.client() as http:
        r = http.post("/v1/embeddings", json={"model": "use-multilingual-v3", "input": input_})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "input" and err["type"] == "invalid_request_error", err
    assert "valid string" not in err["message"]


@pytest.mark.parametrize("input_", [[-1], ["a", 1], [[1], []]])
def test_bad_token_input_never_reaches_an_upstream(parley, input_):
    rec = parley.upstream.rec
    before = len(rec.requests)
    with parley.client() as http:
        r = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": input_})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    assert len(rec.requests) == before
