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
from parley.memory.jobs import EmbeddingWorker
from parley.memory.search import Searcher
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
    searcher: Searcher
    embedder: EmbeddingWorker
    accounting: Accounting = field(default_factory=Accounting.disabled)  # limits, usage rows, metrics


def get_core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


CoreDep = Annotated[Core, Depends(get_core)]
