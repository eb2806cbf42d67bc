"""Retrieval quality on public test sets: dense, BM25 and hybrid side by side.

    python bench/retrieval.py [--data ../shared/bench-data]

CMRC 2018 dev (Chinese): each question should find the passage it was asked about; prints
Recall@1, Recall@5 and MRR@10, and the calibration check: the share of questions whose own
passage scores at or above 0.5 and 0.7, against the share of random passages that do.
Vaswani NPL (English): nDCG@10 and Recall@10 against its qrels.

It uses Parley's own pieces (the packaged embedding model, the BM25 terms and index, the
calibration and fusion of parley/memory/scoring.py), so the figures are the product's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parley.memory import scoring  # noqa: E402
from parley.memory.bm25 import BM25  # noqa: E402
from parley.memory.terms import terms  # noqa: E402
from parley.providers.local_embeddings import LocalEmbedder  # noqa: E402

MODES = ("dense", "bm25", "hybrid")


def score_matrices(docs: list[str], queries: list[str], embedder: LocalEmbedder) -> dict[str, np.ndarray]:
    started = time.perf_counter()
    d = np.asarray(embedder.embed_sync(docs), dtype=np.float32)
    rate = len(docs) / (time.perf_counter() - started)
    q = np.asarray(embedder.embed_sync(queries), dtype=np.float32)
    cosine = q @ d.T
    index = BM25([terms(t) for t in docs])
    bm25 = np.stack([index.normalized(terms(t)) for t in queries])
    print(f"  embedded {len(docs)} documents at {rate:.0f}/s")
    return {"dense": cosine, "bm25": bm25, "hybrid": scoring.fuse(bm25, cosine)}


def ranks_of(matrix: np.ndarray, gold: np.ndarray) -> np.ndarray:
    own = matrix[np.arange(len(gold)), gold]
    return (matrix > own[:, None]).sum(axis=1)  # 0 = first


def cmrc(path: Path, embedder: LocalEmbedder) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs = [p for article in data for p in article["paragraphs"]]
    docs = [p["context"] for p in paragraphs]
    pairs = [(qa["question"], i) for i, p in enumerate(paragraphs) for qa in p["qas"]]
    gold = np.array([i for _, i in pairs])
    print(f"CMRC 2018 dev: {len(docs)} passages, {len(pairs)} questions")
    scores = score_matrices(docs, [q for q, _ in pairs], embedder)
    print(f"  {'mode':<8}{'R@1':>8}{'R@5':>8}{'MRR@10':>9}")
    for mode in MODES:
        r = ranks_of(scores[mode], gold)
        mrr = np.where(r < 10, 1.0 / (r + 1), 0.0).mean()
        print(f"  {mode:<8}{(r < 1).mean():>8.3f}{(r < 5).mean():>8.3f}{mrr:>9.3f}")
    rng = np.random.default_rng(7)
    random_docs = rng.integers(0, len(docs), size=(len(gold), 5))
    random_docs = np.where(random_docs == gold[:, None], (random_docs + 1) % len(docs), random_docs)
    print("  calibration (similarity = calibrated score): own passage ≥ t  vs  random passage ≥ t")
    for mode, cal in (("dense", scoring.DENSE["use-multilingual-v3"]), ("hybrid", scoring.HYBRID)):
        sims = cal(scores[mode])
        own = sims[np.arange(len(gold)), gold]
        rand = sims[np.arange(len(gold))[:, None], random_docs].ravel()
        cells = "  ".join(f"t={t}: {(own >= t).mean():.1%} vs {(rand >= t).mean():.1%}" for t in (0.5, 0.7))
        print(f"  {mode:<8}{cells}")


def vaswani(folder: Path, embedder: LocalEmbedder) -> None:
    text = (folder / "doc-text.trec").read_text(encoding="utf-8", errors="replace")
    docs = re.findall(r"<DOCNO>\s*(\d+)\s*</DOCNO>\s*(.*?)</DOC>", text, re.S)
    ids = [d[0] for d in docs]
    qtext = (folder / "query-text.trec").read_text(encoding="utf-8", errors="replace")
    queries = re.findall(r"<num>\s*(\d+)\s*</num>\s*<title>\s*(.*?)\s*</title>", qtext, re.S)
    qrels: dict[str, set[str]] = {}
    for line in (folder / "qrels").read_text().splitlines():
        qid, _, did, rel = line.split()
        if int(rel) > 0:
            qrels.setdefault(qid, set()).add(did)
    queries = [(qid, q) for qid, q in queries if qid in qrels]
    print(f"Vaswani NPL: {len(docs)} documents, {len(queries)} judged queries")
    scores = score_matrices([d[1].strip() for d in docs], [q.lower() for _, q in queries], embedder)
    print(f"  {'mode':<8}{'nDCG@10':>9}{'R@10':>8}")
    for mode in MODES:
        ndcgs, recalls = [], []
        for k, (qid, _) in enumerate(queries):
            relevant = qrels[qid]
            top = np.argsort(-scores[mode][k])[:10]
            hits = [ids[j] in relevant for j in top]
            dcg = sum(1 / np.log2(i + 2) for i, h in enumerate(hits) if h)
            ideal = sum(1 / np.log2(i + 2) for i in range(min(10, len(relevant))))
            ndcgs.append(dcg / ideal)
            recalls.append(sum(hits) / len(relevant))
        print(f"  {mode:<8}{np.mean(ndcgs):>9.4f}{np.mean(recalls):>8.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "bench-data"))
    args = ap.parse_args()
    data = Path(args.data)
    embedder = LocalEmbedder()
    cmrc(data / "cmrc2018" / "cmrc2018_dev.json", embedder)
    vaswani(data / "vaswani", embedder)
    print(f"hybrid = calibrated((1 - {scoring.DENSE_WEIGHT}) * normalized BM25 + {scoring.DENSE_WEIGHT} * cosine)")


if __name__ == "__main__":
    main()
