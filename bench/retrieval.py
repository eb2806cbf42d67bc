"""Retrieval quality: dense, lexical and hybrid side by side, on three sets, with calibration.

    python bench/retrieval.py [--data ../shared/bench-data] [--cache DIR]

- CMRC 2018 dev (Chinese): each question should find the passage it was asked about
  (Recall@1, Recall@5, MRR@10).
- Vaswani NPL (English physics abstracts): nDCG@10 and Recall@10 against its qrels.
- bench/data/paraphrase.jsonl (Chinese and English knowledge-base passages): top-1 per kind of
  question (paraphrases, English→Chinese, Chinese→English, typos, keywords, and cross-lingual
  questions whose passage has a same-topic twin in the question's language), and how often a
  near-duplicate of the right passage came first.

Calibration, per mode and set: the share of right passages whose similarity is at or above
0.5 (should be ≥ 90%) and of wrong ones (every other passage; should be ≤ 5%); the median
similarity of a passage sharing nothing with the question (should be < 0.1). On the
paraphrase set the lexical line counts same-language questions only: a passage in another
language shares no word with the question by construction.

It runs Parley's own pieces (the packaged embedding model, the terms, the BM25 index, the
scoring of parley/memory/scoring.py), computing what Searcher.search computes for every
passage of a set, so the figures are the product's. ``--cache`` keeps the embeddings between
runs (the Vaswani documents take minutes to embed on a small machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parley.memory import scoring  # noqa: E402
from parley.memory.background import QUESTIONS  # noqa: E402
from parley.memory.bm25 import LexicalIndex  # noqa: E402
from parley.memory.terms import terms  # noqa: E402
from parley.providers.local_embeddings import LocalEmbedder  # noqa: E402

MODES = ("dense", "lexical", "hybrid")
# The public sets live beside the repository (../shared/bench-data), or beside its parent folder
# when the repository is a worktree one level deeper.
PLACES = (ROOT.parent / "shared" / "bench-data", ROOT.parents[1] / "shared" / "bench-data")
DATA = next((p for p in PLACES if p.exists()), PLACES[0])
CROSS = ("en_to_zh", "zh_to_en", "xling_twin")


@dataclass
class Set:
    name: str
    docs: list[str]
    queries: list[str]
    relevant: list[list[int]]  # per query, the passages that answer it
    kinds: list[str] = field(default_factory=list)
    near: dict[int, list[int]] = field(default_factory=dict)


class Embedder:
    def __init__(self, cache: Path | None) -> None:
        self.model = LocalEmbedder()
        self.cache = cache

    def __call__(self, texts: list[str]) -> np.ndarray:
        path = None
        if self.cache is not None:
            digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
            path = self.cache / f"use-multilingual-v3-{digest}.npy"
            if path.exists():
                return np.load(path)
        started = time.perf_counter()
        out = np.asarray(self.model.embed_sync(texts), dtype=np.float32)
        if len(texts) > 1000:
            print(f"  (embedded {len(texts)} texts at {len(texts) / (time.perf_counter() - started):.0f}/s)")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, out)
        return out


def load_cmrc(data: Path) -> Set:
    articles = json.loads((data / "cmrc2018" / "cmrc2018_dev.json").read_text(encoding="utf-8"))["data"]
    paragraphs = [p for a in articles for p in a["paragraphs"]]
    pairs = [(qa["question"], i) for i, p in enumerate(paragraphs) for qa in p["qas"]]
    return Set("CMRC 2018 dev", [p["context"] for p in paragraphs], [q for q, _ in pairs], [[i] for _, i in pairs])


def load_vaswani(data: Path) -> Set:
    folder = data / "vaswani"
    text = (folder / "doc-text.trec").read_text(encoding="utf-8", errors="replace")
    docs = re.findall(r"<DOCNO>\s*(\d+)\s*</DOCNO>\s*(.*?)</DOC>", text, re.S)
    position = {d[0]: i for i, d in enumerate(docs)}
    qtext = (folder / "query-text.trec").read_text(encoding="utf-8", errors="replace")
    queries = re.findall(r"<num>\s*(\d+)\s*</num>\s*<title>\s*(.*?)\s*</title>", qtext, re.S)
    qrels: dict[str, list[int]] = {}
    for line in (folder / "qrels").read_text().splitlines():
        qid, _, did, rel = line.split()
        if int(rel) > 0:
            qrels.setdefault(qid, []).append(position[did])
    judged = [(qid, q) for qid, q in queries if qid in qrels]
    return Set(
        "Vaswani NPL", [d[1].strip() for d in docs], [q.lower() for _, q in judged], [qrels[qid] for qid, _ in judged]
    )


def load_paraphrase(path: Path) -> Set:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    passages = [r for r in rows if "passage" in r]
    ids = {p["passage"]: i for i, p in enumerate(passages)}
    questions = [r for r in rows if "query" in r]
    return Set(
        "paraphrase set",
        [p["text"] for p in passages],
        [q["query"] for q in questions],
        [[ids[q["answer"]]] for q in questions],
        [q["kind"] for q in questions],
        {ids[p["passage"]]: [ids[n] for n in p.get("near", [])] for p in passages},
    )


def logits(s: Set, embed: Embedder, shift: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per mode, the log-odds of every (query, passage) pair, as Searcher.search computes them;
    and which pairs share at least one word or gram."""
    d = embed(s.docs)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    q = scoring.shifted(embed(s.queries), shift)
    cos = q @ d.T
    means = (q @ d.sum(axis=0)) / (len(s.docs) + scoring.SHRINK)
    profile = scoring.PACKAGED
    index = LexicalIndex([" ".join(terms(t, document=True)) for t in s.docs])
    out = {m: np.empty(cos.shape) for m in MODES}
    shared = np.zeros(cos.shape, dtype=bool)
    for k, text in enumerate(s.queries):
        lex = index.match(terms(text))
        shared[k] = lex.score > 0
        dense = scoring.dense_logit(profile, cos[k], float(means[k]))
        mean_l = scoring.shrunk_mean(lex.total, len(s.docs))
        lexical = scoring.lexical_logit(lex.score, mean_l)
        out["dense"][k] = dense
        out["lexical"][k] = lexical
        out["hybrid"][k] = scoring.hybrid_logit(dense, lexical, lex.coverage, float(lex.score.max()))
    return out, shared


def rank_of_first(m: np.ndarray, relevant: list[list[int]]) -> np.ndarray:
    """0 when a right passage comes first; ties count against."""
    best = np.array([m[k, r].max() for k, r in enumerate(relevant)])
    return (m >= best[:, None]).sum(axis=1) - 1


def ndcg10(m: np.ndarray, relevant: list[list[int]]) -> tuple[float, float]:
    ndcgs, recalls = [], []
    for k, rel in enumerate(relevant):
        top = np.argsort(-m[k], kind="stable")[:10]
        hits = np.isin(top, rel)
        dcg = float((hits / np.log2(np.arange(2, 12))).sum())
        ideal = float((1 / np.log2(np.arange(2, 2 + min(10, len(rel))))).sum())
        ndcgs.append(dcg / ideal)
        recalls.append(hits.sum() / len(rel))
    return float(np.mean(ndcgs)), float(np.mean(recalls))


def calibration(m: np.ndarray, s: Set, rows: np.ndarray) -> tuple[float, float]:
    """(share of right passages at or above 0.5, share of wrong ones) over the queries ``rows``."""
    sims = scoring.sigmoid(m[rows])
    right = np.zeros(sims.shape, dtype=bool)
    for i, k in enumerate(rows):
        right[i, s.relevant[k]] = True
    return float((sims[right] >= 0.5).mean()), float((sims[~right] >= 0.5).mean())


def report(s: Set, m: dict[str, np.ndarray], shared: np.ndarray) -> dict[str, float]:
    n = len(s.queries)
    print(f"{s.name}: {len(s.docs)} passages, {n} queries")
    headline: dict[str, float] = {}
    if s.name.startswith("Vaswani"):
        print(f"  {'mode':<8}{'nDCG@10':>9}{'R@10':>8}")
        for mode in MODES:
            nd, r10 = ndcg10(m[mode], s.relevant)
            headline[mode] = nd
            print(f"  {mode:<8}{nd:>9.4f}{r10:>8.3f}")
    else:
        kinds = list(dict.fromkeys(s.kinds))
        head = f"  {'mode':<8}{'R@1':>7}{'R@5':>7}{'MRR@10':>8}"
        if kinds:
            head += "".join(f"{k:>12}" for k in kinds) + f"{'near-dup':>10}"
        print(head)
        for mode in MODES:
            r = rank_of_first(m[mode], s.relevant)
            mrr = np.where(r < 10, 1.0 / (r + 1), 0.0).mean()
            headline[mode] = float((r == 0).mean())
            line = f"  {mode:<8}{(r == 0).mean():>7.3f}{(r < 5).mean():>7.3f}{mrr:>8.3f}"
            if kinds:
                kind = np.array(s.kinds)
                line += "".join(f"{(r[kind == k] == 0).mean():>12.3f}" for k in kinds)
                top = m[mode].argmax(axis=1)
                confused = sum(top[k] in s.near.get(s.relevant[k][0], []) for k in range(n))
                line += f"{confused:>10d}"
            print(line)
        if kinds:
            same = np.array([k not in CROSS for k in s.kinds])
            five = np.array([k != "xling_twin" for k in s.kinds])
            for mode in MODES:
                r = rank_of_first(m[mode], s.relevant)
                print(f"  {mode:<8}top-1 over the five kinds {(r[five] == 0).mean():.3f}", end="")
                print(f"; same-language questions {(r[same] == 0).mean():.3f}")
    print("  calibration: right ≥ 0.5 | wrong ≥ 0.5 | passages sharing no word: median similarity")
    everyone = np.arange(n)
    for mode in MODES:
        rows = everyone
        note = ""
        if mode == "lexical" and s.kinds:
            rows = np.array([k for k in everyone if s.kinds[k] not in CROSS])
            note = "  (same-language questions)"
        right, wrong = calibration(m[mode], s, rows)
        unrelated = scoring.sigmoid(m[mode])[~shared]
        floor = float(np.median(unrelated)) if unrelated.size else float("nan")
        print(f"  {mode:<8}{right:>8.1%} | {wrong:>6.1%} | {floor:.3f}{note}")
    return headline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--paraphrase", default=str(ROOT / "bench" / "data" / "paraphrase.jsonl"))
    ap.add_argument("--cache", default=None, help="a folder to keep embeddings in between runs")
    args = ap.parse_args()
    data = Path(args.data)
    embed = Embedder(Path(args.cache) if args.cache else None)
    shift = scoring.background_direction(embed(list(QUESTIONS)))
    started = time.perf_counter()
    for s in (load_cmrc(data), load_vaswani(data), load_paraphrase(Path(args.paraphrase))):
        report(s, *logits(s, embed, shift))
    print(
        f"dense: packaged model, query less the background direction, cosine less its shrunk mean, "
        f"calibrated at {scoring.DENSE_MIDPOINT} (slope {scoring.DENSE_SLOPE}); lexical: L less "
        f"{scoring.BACKGROUND_WEIGHT}× its shrunk mean, calibrated at {scoring.LEXICAL_MIDPOINT} "
        f"(slope {scoring.LEXICAL_SLOPE}); hybrid: gate {scoring.GATE}. "
        f"{time.perf_counter() - started:.0f}s"
    )


if __name__ == "__main__":
    main()
