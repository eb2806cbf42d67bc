"""Turning raw scores into similarities that mean something at the seed's thresholds.

Raw cosines depend on the embedding model: with the Universal Sentence Encoder, a question and
the passage that answers it score a median 0.40 on CMRC 2018 dev and a random passage 0.06, so
the seed's defaults (0.5 in chat, 0.7 in search) would cut most right answers. Each model gets
a logistic calibration, monotonic (it never reorders results):

    similarity = 1 / (1 + exp(-slope * (cosine - midpoint)))

``midpoint`` is the raw cosine that maps to 0.5. For ``use-multilingual-v3`` it was fitted on
CMRC 2018 dev (bench/retrieval.py prints the rates): midpoint 0.22 lies between the 10th
percentile of right passages (0.242) and the 95th percentile of random ones (0.204).
Upstream embedding models use their configured ``similarity`` calibration, or the raw cosine.

Hybrid retrieval fuses a normalized BM25 score (see bm25.py) with the raw cosine,
``(1 - DENSE_WEIGHT) * bm25 + DENSE_WEIGHT * cosine``, and calibrates the fusion the same way.
The weight was tuned on both benchmark sets so hybrid is at least as good as BM25 on both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parley.config import LOCAL_EMBEDDING_MODEL

DENSE_WEIGHT = 0.05


@dataclass(frozen=True)
class Calibration:
    midpoint: float
    slope: float

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.slope * (np.asarray(raw, dtype=np.float64) - self.midpoint)))

    def raw_for(self, similarity: float) -> float:
        """The raw score that maps to ``similarity`` (to push a threshold down into SQL)."""
        similarity = min(max(similarity, 1e-9), 1 - 1e-9)
        return self.midpoint - float(np.log(1 / similarity - 1)) / self.slope


class Identity:
    """Raw cosine, clipped at 0: for models nobody calibrated."""

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)

    def raw_for(self, similarity: float) -> float:
        return similarity


DENSE = {LOCAL_EMBEDDING_MODEL: Calibration(midpoint=0.22, slope=10.0)}
HYBRID = Calibration(midpoint=0.15, slope=12.0)


def dense_calibration(model: str, configured: dict[str, Calibration] | None = None) -> Calibration | Identity:
    if configured and model in configured:
        return configured[model]
    return DENSE.get(model, Identity())


def fuse(bm25_normalized: np.ndarray, cosine: np.ndarray) -> np.ndarray:
    return (1 - DENSE_WEIGHT) * bm25_normalized + DENSE_WEIGHT * cosine
