"""Similarities that mean the same in every mode: a passage at 0.5 or above answers the query.

Every mode computes a log-odds that the passage answers the query, and ``similarity`` is its
logistic, ``1 / (1 + exp(-logit))``. The constants below were fitted with bench/retrieval.py
on three sets at once (CMRC 2018 dev, Vaswani NPL and bench/data/paraphrase.jsonl, with its
paraphrases, cross-lingual questions, typos and keywords), aiming at: at least 90% of right
passages at or above 0.5, at most 5% of wrong ones, and an unrelated passage below 0.1.

**Dense** (cosine of embeddings). For the packaged ``use-multilingual-v3`` two corrections come
first, both per query and both cheap:

- the query vector loses the direction all questions share (the mean of background.QUESTIONS,
  embedded with the same model) and is renormalized. Passages that resemble every question
  ("hubs") then stop outranking the one that answers: top-1 on the paraphrase set 0.79 → 0.86;
- the cosine loses the query's mean cosine over the memory (shrunk towards 0 for small
  memories, as if ``SHRINK`` unrelated chunks were there too). In a memory where everything is
  about one subject, every passage is close to every question; only what stands out counts.

then ``logit = DENSE_SLOPE * (cosine - DENSE_MIDPOINT)``. Models served by an upstream use
their configured ``similarity`` calibration on the raw cosine (``parley memories calibrate``
fits one), or the raw cosine itself.

**Lexical** (BM25, see bm25.py): ``L`` in 0..1 per chunk, minus twice the query's mean ``L``
over the memory (shrunk the same way: a query whose words are everywhere proves little), then
``logit = LEXICAL_SLOPE * (x - LEXICAL_MIDPOINT)``. A chunk sharing no word or gram with the
query gets ``NO_MATCH`` (similarity 0.0025): no floor lifts a passage that shares nothing.

**Hybrid** mixes the two log-odds per chunk with weight ``ω``:

    logit = (1 - ω) * dense + ω * lexical

``ω`` is the lexical evidence's reach: the chunk's coverage (the share of the query it could
have matched: an English passage cannot contain a Chinese question's words) times a gate on
the query's best lexical match ``L*``, 0 below ``GATE[0]`` and 1 above ``GATE[1]``. When the
memory holds the query's words (CMRC-like questions, keywords, typos that still share most
characters) lexical evidence decides; when it does not (paraphrases, another language) dense
decides and stray shared words cannot pull a wrong passage up. A passage in another language
than the query keeps its dense log-odds whatever the gate says. Both sides being calibrated
log-odds, the mix is calibrated too. Simpler fusions were measured first and lost on one set or
another: a convex mix of BM25 and cosine must lean on BM25 for CMRC and Vaswani and then drowns
paraphrases and cross-lingual questions; reciprocal rank fusion drops CMRC to 0.83–0.93.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parley.config import LOCAL_EMBEDDING_MODEL

DENSE_MIDPOINT = 0.165
DENSE_SLOPE = 24.0
LEXICAL_MIDPOINT = 0.04
LEXICAL_SLOPE = 20.0
BACKGROUND_WEIGHT = 2.0  # lexical: how many times the query's mean L a chunk must exceed
SHRINK = 20  # pseudo-chunks of zero similarity added to every memory's per-query means
GATE = (0.05, 0.2)  # best lexical match L* at which lexical evidence starts and fully counts
NO_MATCH = -6.0  # the lexical log-odds of a chunk that shares nothing with the query
_EPS = 1e-6


@dataclass(frozen=True)
class Calibration:
    """similarity = logistic(slope * (raw - midpoint)): ``midpoint`` is the raw score read as 0.5."""

    midpoint: float
    slope: float

    def logit(self, raw: np.ndarray) -> np.ndarray:
        return self.slope * (np.asarray(raw, dtype=np.float64) - self.midpoint)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return sigmoid(self.logit(raw))


class Identity:
    """The raw cosine clipped to 0..1, for models nobody calibrated."""

    def logit(self, raw: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(raw, dtype=np.float64), _EPS, 1 - _EPS)
        return np.log(p / (1 - p))

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)


@dataclass(frozen=True)
class DenseProfile:
    """How one embedding model's cosines become log-odds (see the module's docstring)."""

    calibration: Calibration | Identity
    shift: bool = False  # subtract the background question direction from the query vector
    centered: bool = False  # subtract the query's (shrunk) mean cosine over the memory


PACKAGED = DenseProfile(Calibration(DENSE_MIDPOINT, DENSE_SLOPE), shift=True, centered=True)


def dense_profile(model: str, configured: dict[str, Calibration] | None = None) -> DenseProfile:
    if configured and model in configured:
        return DenseProfile(configured[model])
    if model == LOCAL_EMBEDDING_MODEL:
        return PACKAGED
    return DenseProfile(Identity())


def sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logit, dtype=np.float64)))


def shrunk_mean(total: float, count: int) -> float:
    """A per-query mean over a memory's ``count`` chunks, as if ``SHRINK`` zero-scoring ones were added."""
    return total / (count + SHRINK)


def dense_logit(profile: DenseProfile, cosine: np.ndarray, mean: float = 0.0) -> np.ndarray:
    """``mean``: the query's shrunk mean cosine over the memory (used when the profile is centered)."""
    raw = np.asarray(cosine, dtype=np.float64)
    return profile.calibration.logit(raw - mean if profile.centered else raw)


def rank_dense(profile: DenseProfile, cosine: np.ndarray, mean: float = 0.0) -> np.ndarray:
    """``dense_logit`` in float32, for ranking many chunks before the best few are scored exactly."""
    cal = profile.calibration
    raw = cosine - np.float32(mean) if profile.centered else cosine.astype(np.float32)
    if isinstance(cal, Calibration):
        raw -= np.float32(cal.midpoint)
        raw *= np.float32(cal.slope)
        return raw
    return cal.logit(raw).astype(np.float32)


def lexical_logit32(score: np.ndarray, mean: float) -> np.ndarray:
    """``lexical_logit`` in float32 (ranking only)."""
    logit = score - np.float32(BACKGROUND_WEIGHT * mean + LEXICAL_MIDPOINT)
    logit *= np.float32(LEXICAL_SLOPE)
    logit[score <= 0] = NO_MATCH
    return logit


def lexical_logit(score: np.ndarray, mean: float) -> np.ndarray:
    """``score``: L per chunk; ``mean``: the query's shrunk mean L over the memory."""
    score = np.asarray(score, dtype=np.float64)
    logit = LEXICAL_SLOPE * (score - BACKGROUND_WEIGHT * mean - LEXICAL_MIDPOINT)
    return np.where(score > 0, logit, NO_MATCH)


def gate(best: float) -> float:
    """How far lexical evidence counts for a query whose best lexical match is ``best``."""
    lo, hi = GATE
    return float(min(max((best - lo) / (hi - lo), 0.0), 1.0))


def hybrid_logit(dense: np.ndarray, lexical: np.ndarray, coverage: np.ndarray, best: float) -> np.ndarray:
    weight = gate(best) * np.asarray(coverage, dtype=np.float64)
    logit: np.ndarray = (1 - weight) * dense + weight * lexical
    return logit


def background_direction(vectors: np.ndarray) -> np.ndarray:
    """The mean of the background questions' unit vectors (see ``shifted``)."""
    rows = np.asarray(vectors, dtype=np.float32)
    mean: np.ndarray = (rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)).mean(axis=0)
    return mean


def shifted(query: np.ndarray, direction: np.ndarray | None) -> np.ndarray:
    """Unit query vector(s), less the background direction when there is one, renormalized."""
    q: np.ndarray = np.asarray(query, dtype=np.float32)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    if direction is None:
        return q
    q = q - direction
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    return q
