"""The core: everything a request handler needs, built once at start and injected.

Routers take it as ``core: CoreDep``; the CLI builds the store modules it needs on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from parley.accounting import Accounting
from parley.auth.keys import KeyVerifier
from parley.config import Settings
from parley.integrations import TokenVerifier
from parley.lazy_search import LazySearcher
from parley.memory.jobs import EmbeddingWorker
from parley.providers.routing import Router


@dataclass
class Core:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    router: Router
    gateway_keys: KeyVerifier
    project_keys: KeyVerifier
    tokens: TokenVerifier
    searcher: LazySearcher  # imports the retrieval modules on first need
    embedder: EmbeddingWorker
    accounting: Accounting = field(default_factory=Accounting.disabled)  # limits, usage rows, metrics


def get_core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


async def _core_dependency(request: Request) -> Core:
    # A coroutine on purpose: FastAPI runs a plain function dependency in its thread pool,
    # a thread hand-off (and a wake-up of a pool thread) on every request.
    return get_core(request)


CoreDep = Annotated[Core, Depends(_core_dependency)]
