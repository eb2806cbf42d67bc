"""Fit a dense calibration on a memory's own contents (``parley memories calibrate MEMORY_ID``).

Questions with known answers come from the memory itself, by the inverse cloze task (Lee et
al., 2019, "Latent Retrieval for Weakly Supervised Open Domain Question Answering"): one
sentence taken out of a chunk plays the question, the rest of that chunk is its right answer
and every other chunk's rest a wrong one. A sentence is not a question, but like one it shares
meaning, not the whole text, with its answer, which is what a calibration needs. Text written
without sentence punctuation (titles, notes, abstracts stored as lines) is cut at its line
breaks and wider gaps instead, so a heading asks for the text below it.

The fit reports what the memory's model does now (the share of right pairs at or above 0.5, of
wrong pairs) and a ``midpoint`` and ``slope`` for ``models[].similarity`` in the configuration:
the midpoint lies where right answers still clear it at least 90% of the time while wrong ones
do at most 5% of the time (or, when no point does both, where the two shortfalls are equal),
and the slope comes from a logistic fit of right against wrong pairs (each side weighing half).
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.config import LOCAL_EMBEDDING_MODEL
from parley.memory import scoring
from parley.memory.search import Searcher
from parley.storage.models import Memory, MemoryChunk

SENTENCE = re.compile(r"(?<=[。！？!?；;])|(?<=[.!?])\s+")
BREAK = re.compile(r"\s*\n\s*|\s{2,}")  # for text without sentence punctuation
MIN_QUESTION = 8  # characters
MIN_ANSWER = 20


@dataclass
class Fit:
    model: str
    pairs: int  # questions drawn from the memory (each with one right and many wrong answers)
    midpoint: float
    slope: float
    right_now: float  # with the calibration in use: right answers at or above 0.5
    wrong_now: float
    right_fitted: float  # with the fitted one
    wrong_fitted: float
    applies_to: str  # "configuration" for upstream models; "packaged" when only a report

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def pieces(text: str) -> tuple[list[str], str]:
    """A chunk's sentences and what joins them back; its lines (or runs cut by wide gaps) when
    it has fewer than two sentences."""
    parts = [p for p in SENTENCE.split(text) if p.strip()]
    if len(parts) >= 2:
        return parts, ""
    return [p for p in BREAK.split(text.strip()) if p], " "


def cloze(texts: list[str], count: int, seed: int = 7) -> list[tuple[str, str]]:
    """(question, answer) pairs: a sentence out of a chunk, and the chunk without it."""
    rng = random.Random(seed)
    order = list(range(len(texts)))
    rng.shuffle(order)
    out: list[tuple[str, str]] = []
    for i in order:
        parts, glue = pieces(texts[i])
        if len(parts) < 2:
            continue
        j = rng.randrange(len(parts))
        question = parts[j].strip()
        answer = glue.join(parts[:j] + parts[j + 1 :]).strip()
        if len(question) >= MIN_QUESTION and len(answer) >= MIN_ANSWER:
            out.append((question, answer))
        if len(out) == count:
            break
    return out


def _threshold(right: np.ndarray, wrong: np.ndarray) -> float:
    candidates = np.unique(np.concatenate([right, wrong]))
    shortfall = [max(0.9 - (right >= t).mean(), (wrong >= t).mean() - 0.05) for t in candidates]
    best = min(shortfall)
    chosen = candidates[[s == best for s in shortfall]]
    return float((chosen.min() + chosen.max()) / 2)


def _slope(x: np.ndarray, y: np.ndarray, midpoint: float) -> float:
    """Maximum-likelihood slope of logistic(slope * (x - midpoint)), classes weighing half each."""
    w = np.where(y, 0.5 / max(y.sum(), 1), 0.5 / max((~y).sum(), 1))
    slope = 10.0
    for _ in range(50):  # Newton's method in one variable
        z = x - midpoint
        p = scoring.sigmoid(slope * z)
        grad = float((w * (p - y) * z).sum())
        hess = float((w * p * (1 - p) * z * z).sum())
        if hess <= 0:
            break
        slope = float(np.clip(slope - grad / hess, 1.0, 200.0))
    return slope


async def calibrate(db: AsyncSession, memory: Memory, searcher: Searcher, sample: int = 200) -> Fit:
    rows = await db.scalars(
        select(MemoryChunk.content).where(MemoryChunk.memory_id == memory.id, MemoryChunk.active.is_(True))
    )
    pairs = cloze(list(rows.all()), sample)
    if len(pairs) < 10:
        raise ValueError(f"only {len(pairs)} chunks have two sentences or more; at least 10 are needed")
    router = searcher.router
    answers = np.asarray((await router.embed(memory.embedding_model, [a for _, a in pairs])).vectors, dtype=np.float32)
    answers /= np.maximum(np.linalg.norm(answers, axis=1, keepdims=True), 1e-12)
    questions = await searcher.query_vectors(memory, [q for q, _ in pairs])
    cos = questions @ answers.T
    profile = searcher.profile(memory)
    if profile.centered:  # as search does: less each question's mean cosine over the answers
        raw = cos - ((questions @ answers.sum(axis=0)) / (len(pairs) + scoring.SHRINK))[:, None]
    else:
        raw = cos
    right = np.eye(len(pairs), dtype=bool)
    now = np.asarray(profile.calibration(raw))
    midpoint = _threshold(raw[right], raw[~right])
    slope = _slope(raw.ravel(), right.ravel(), midpoint)
    fitted = scoring.sigmoid(slope * (raw - midpoint))
    return Fit(
        model=memory.embedding_model,
        pairs=len(pairs),
        midpoint=midpoint,
        slope=slope,
        right_now=float((now[right] >= 0.5).mean()),
        wrong_now=float((now[~right] >= 0.5).mean()),
        right_fitted=float((fitted[right] >= 0.5).mean()),
        wrong_fitted=float((fitted[~right] >= 0.5).mean()),
        applies_to="packaged" if memory.embedding_model == LOCAL_EMBEDDING_MODEL else "configuration",
    )
