"""Okapi BM25 over a memory's chunks, in two fields, with scores that mean the same across queries.

**Words** are the stored BM25 terms of each chunk (see terms.py). **Grams** are those words
broken into characters (Chinese) and trigrams (English): a second field that still matches
when a word is mistyped. A chunk's lexical score ``L`` is the mean of both fields' scores,
each divided by the most that chunk could have scored for the query, so ``L`` runs from 0
(no query term present) to 1 (every term present, saturated).

"Could have scored" counts only the query terms written in a script the chunk uses: an English
chunk cannot contain the Chinese words of a query, so their absence says nothing about it.
``coverage`` is the share of the query's weight the chunk could have matched at all; retrieval
trusts lexical evidence only as far as it covers (see scoring.py).

Postings are stored compressed (CSR: one array of chunk positions and weights, sliced per
term) and built with numpy; gram postings are derived from the word postings the first time a
query uses that gram, so loading an index costs no more than one pass over its words.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from parley.memory.terms import grams, script_of, stored_stopwords

K1 = 1.2
B = 0.75
GRAM_WEIGHT = 0.5  # the gram field's share beside the word field (typo tolerance, measured in bench/retrieval.py)
FUZZY = 0.5  # the share of a query word's grams a chunk must hold for them to count
GRAM_CACHE = 4096  # gram postings kept per index


class Field:
    """One BM25 field over ``size`` documents, from (term id, doc, tf) postings sorted by term."""

    def __init__(self, size: int, vocab: dict[str, int], term: np.ndarray, doc: np.ndarray, tf: np.ndarray) -> None:
        self.size = size
        self.vocab = vocab
        lengths = np.bincount(doc, weights=tf, minlength=size).astype(np.float32)
        self.avgdl = float(lengths.mean()) if size else 0.0
        self.norm = (K1 * (1 - B + B * lengths / (self.avgdl or 1.0))).astype(np.float32)
        self.indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term, minlength=len(vocab)), out=self.indptr[1:])
        self.doc = doc.astype(np.int32)
        tf = tf.astype(np.float32)
        self.weight = tf * (K1 + 1) / (tf + self.norm[self.doc])

    def idf(self, df: int) -> float:
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(chunks containing ``term``, their BM25 weights); empty when none does."""
        t = self.vocab.get(term)
        lo, hi = (0, 0) if t is None else (self.indptr[t], self.indptr[t + 1])
        return self.doc[lo:hi], self.weight[lo:hi]


@dataclass
class Lexical:
    """One query's lexical evidence over an index's chunks."""

    score: np.ndarray  # L per chunk, 0..1
    coverage: np.ndarray  # per chunk, the share of the query it could have matched
    total: float  # the sum of L over all chunks (the query's background level, see scoring.py)


class LexicalIndex:
    def __init__(self, bags: Sequence[str]) -> None:
        self.size = len(bags)
        vocab: dict[str, int] = {}
        ids = array("q")
        lengths = np.empty(self.size, dtype=np.int64)
        stop = stored_stopwords()
        for i, bag in enumerate(bags):
            # Stopwords are dropped here too: chunks stored before the list grew still meet queries.
            words = [w for w in (bag or "").split() if w not in stop]
            lengths[i] = len(words)
            ids.extend([vocab.setdefault(w, len(vocab)) for w in words])
        doc = np.repeat(np.arange(self.size, dtype=np.int64), lengths)
        key, tf = np.unique(np.frombuffer(ids, dtype=np.int64) * max(self.size, 1) + doc, return_counts=True)
        term, doc = np.divmod(key, max(self.size, 1))
        self.words = Field(self.size, vocab, term, doc, tf)
        # Which scripts each chunk is written in: a chunk is "Chinese" if any of its terms is.
        scripts = np.zeros((len(vocab), 3), dtype=bool)
        names = list(vocab)
        for t, name in enumerate(names):
            scripts[t, script_of(name)] = True
        self.has = np.zeros((self.size, 3), dtype=bool)
        for s in (0, 1):
            self.has[:, s] = np.bincount(doc, weights=scripts[term, s], minlength=self.size) > 0
        self.has[:, 2] = True  # digits and other script-less terms can appear anywhere
        # Grams: which words contain each gram (and how often); chunk gram lengths for BM25.
        self._gram_words: dict[str, list[tuple[int, int]]] = {}
        per_word = np.zeros(len(vocab), dtype=np.float32)
        for t, name in enumerate(names):
            pieces = Counter(grams([name]))
            per_word[t] = sum(pieces.values())
            for g, n in pieces.items():
                self._gram_words.setdefault(g, []).append((t, n))
        gram_lengths = np.bincount(doc, weights=tf * per_word[term], minlength=self.size).astype(np.float32)
        self._gram_avgdl = float(gram_lengths.mean()) if self.size else 0.0
        self._gram_norm = (K1 * (1 - B + B * gram_lengths / (self._gram_avgdl or 1.0))).astype(np.float32)
        self._word_tf = tf.astype(np.float32)
        self._gram_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()  # queries run in worker threads and share the gram cache

    def __len__(self) -> int:
        return self.size

    def _gram(self, gram: str) -> tuple[np.ndarray, np.ndarray]:
        """(chunks, BM25 weights) of a gram, derived from the postings of the words containing it."""
        with self._lock:
            hit = self._gram_cache.get(gram)
        if hit is not None:
            return hit
        parts, counts = [], []
        for t, n in self._gram_words.get(gram, ()):
            lo, hi = self.words.indptr[t], self.words.indptr[t + 1]
            parts.append(np.arange(lo, hi))
            counts.append(np.full(hi - lo, n, dtype=np.float32))
        if parts:
            at = np.concatenate(parts)
            weights = self._word_tf[at] * np.concatenate(counts)
            tf = np.bincount(self.words.doc[at], weights=weights, minlength=self.size)
            docs = np.flatnonzero(tf).astype(np.int32)
            tfs = tf[docs].astype(np.float32)
            hit = (docs, tfs * (K1 + 1) / (tfs + self._gram_norm[docs]))
        else:
            hit = (np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32))
        with self._lock:
            if len(self._gram_cache) >= GRAM_CACHE:
                self._gram_cache.pop(next(iter(self._gram_cache)))
            self._gram_cache[gram] = hit
        return hit

    def _field(self, query: dict[str, float]) -> tuple[np.ndarray, np.ndarray, float]:
        """Words: (raw BM25 per chunk, the most each chunk could score, the most any text could score)."""
        raw = np.zeros(self.size, dtype=np.float32)
        ceiling = np.zeros(3, dtype=np.float64)  # per script: Han, Latin, neither
        for term, qtf in query.items():
            docs, weights = self.words.postings(term)
            idf = self.words.idf(len(docs))
            ceiling[script_of(term)] += qtf * idf * (K1 + 1)
            if len(docs):
                raw[docs] += np.float32(qtf * idf) * weights
        return raw, self.has @ ceiling.astype(np.float32), float(ceiling.sum())

    def _gram_field(self, query: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Like ``_field`` over the grams of each query word. Each word weighs the same however many
        grams it breaks into, and its grams count in a chunk only if the chunk holds at least
        ``FUZZY`` of them: a mistyped word still shares most of its grams, an unrelated word that
        merely starts alike (``#re`` of refund and reset) does not."""
        raw = np.zeros(self.size, dtype=np.float32)
        ceiling = np.zeros(3, dtype=np.float64)
        for word, count in Counter(query).items():
            parts = Counter(grams([word]))
            total = sum(parts.values())
            if len(parts) == 1:  # one gram: nothing to require, its postings add up directly
                part, n = next(iter(parts.items()))
                docs, weights = self._gram(part)
                idf = self.words.idf(len(docs))
                share = count * n / total
                ceiling[script_of(part)] += share * idf * (K1 + 1)
                if len(docs):
                    raw[docs] += np.float32(share * idf) * weights
                continue
            # Several grams: sums per chunk, then only the chunks holding enough of them count.
            found = np.zeros(self.size, dtype=np.float32)
            named, shares = [], []
            for part, n in parts.items():
                docs, weights = self._gram(part)
                idf = self.words.idf(len(docs))
                share = count * n / total
                ceiling[script_of(part)] += share * idf * (K1 + 1)
                if len(docs):
                    found[docs] += np.float32(share * idf) * weights
                    named.append(docs)
                    shares.append(np.full(len(docs), n / total))
            if named:
                # The share of the word's grams each chunk holds, counted in one pass (bincount,
                # not an indexed add per gram); found × (enough held) keeps or zeroes each sum.
                held = np.bincount(np.concatenate(named), weights=np.concatenate(shares), minlength=self.size)
                found *= held >= FUZZY - 1e-6
                raw += found
        return raw, self.has @ ceiling.astype(np.float32)

    def match(self, query: Sequence[str]) -> Lexical:
        stop = stored_stopwords()
        query = [t for t in query if t not in stop]
        raw_w, ceil_w, full = self._field(dict(Counter(query)))
        raw_g, ceil_g = self._gram_field(query)
        with np.errstate(divide="ignore", invalid="ignore"):
            words = np.where(ceil_w > 0, raw_w / ceil_w, 0.0)
            pieces = np.where(ceil_g > 0, raw_g / ceil_g, 0.0)
        score = ((words + GRAM_WEIGHT * pieces) / (1 + GRAM_WEIGHT)).astype(np.float32)
        coverage = (ceil_w / full).astype(np.float32) if full > 0 else np.zeros(self.size, dtype=np.float32)
        return Lexical(score, coverage, float(score.sum()))
