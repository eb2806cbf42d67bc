"""The memory searcher, built on first need.

Its modules (parley.memory.search and what it imports: numpy, the lexical and coarse indexes,
the scoring) keep ~15 MB resident in every worker, and most workers only relay chats. They are
imported in a worker thread the first time a memory search or a retrieving turn needs them, so
the event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parley.memory.search import Searcher


class LazySearcher:
    def __init__(self, router: Any, postgres: bool) -> None:
        self._router = router
        self._postgres = postgres
        self._searcher: Searcher | None = None
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> Searcher | None:
        """The searcher if something has needed it yet (its index cache holds nothing otherwise)."""
        return self._searcher

    async def get(self) -> Searcher:
        """The searcher; parley.memory.retrieval is importable without cost once this returns."""
        if self._searcher is None:
            async with self._lock:
                if self._searcher is None:
                    # retrieval imports search; both land in sys.modules off the event loop
                    await asyncio.to_thread(importlib.import_module, "parley.memory.retrieval")
                    from parley.memory.search import Searcher

                    self._searcher = Searcher(self._router, postgres=self._postgres)
        return self._searcher
