"""Okapi BM25 over a fixed set of documents, with a score that means the same across queries.

``normalized`` divides a document's score by the most any document could score for that
query (every query term present, saturated, in a short document): 0 means no term matched,
1 a perfect lexical match. That makes a lexical score usable beside a cosine and against a
threshold, which raw BM25 (unbounded, query-dependent) is not.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

K1 = 1.2
B = 0.75


class BM25:
    def __init__(self, documents: Sequence[Sequence[str]]) -> None:
        self.size = len(documents)
        lengths = np.array([len(d) for d in documents], dtype=np.float32)
        self.avgdl = float(lengths.mean()) if self.size else 0.0
        norm = K1 * (1 - B + B * lengths / (self.avgdl or 1.0))
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, doc in enumerate(documents):
            for term, tf in Counter(doc).items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(i)
                tfs.append(tf)
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, (ids, tfs) in postings.items():
            idx = np.array(ids, dtype=np.int32)
            tf = np.array(tfs, dtype=np.float32)
            self._postings[term] = (idx, tf * (K1 + 1) / (tf + norm[idx]))

    def idf(self, term: str) -> float:
        df = len(self._postings[term][0]) if term in self._postings else 0
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def scores(self, query: Sequence[str]) -> tuple[np.ndarray, float]:
        """(score per document, the best score possible for this query)."""
        out = np.zeros(self.size, dtype=np.float32)
        ceiling = 0.0
        for term, qtf in Counter(query).items():
            idf = self.idf(term)
            ceiling += qtf * idf * (K1 + 1)
            hit = self._postings.get(term)
            if hit is not None:
                out[hit[0]] += qtf * idf * hit[1]
        return out, ceiling

    def normalized(self, query: Sequence[str]) -> np.ndarray:
        raw, ceiling = self.scores(query)
        return raw / ceiling if ceiling > 0 else raw
