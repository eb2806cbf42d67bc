"""create_app(): the three dialects over one core, and what they share for the app's lifetime."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp

from parley import __version__, logs
from parley.accounting import Accounting
from parley.api import anthropic, cors, docs, errors, gemini, integration, v1, v8
from parley.api import metrics as metrics_api
from parley.api import responses as responses_api
from parley.api.entry import Entry
from parley.api.front import Front
from parley.api.limits import BodyLimits
from parley.auth.keys import KeyVerifier
from parley.auth.sealed import server_key
from parley.config import Settings, load_settings
from parley.core import Core
from parley.extract import sandbox as extract_sandbox
from parley.integrations import TokenVerifier
from parley.lazy_search import LazySearcher
from parley.memory.jobs import EmbeddingWorker
from parley.providers.routing import Router
from parley.storage import db
from parley.storage.models import GatewayKey, ProjectKey


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    logs.stamp_request_ids()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # `parley serve` migrates once before starting workers; a bare ASGI host migrates here.
        if os.environ.get("PARLEY_MIGRATED") != settings.database_url:
            await db.migrate(settings.database_url)
        engine = db.create_engine(
            settings.database_url,
            connect_timeout=settings.database_connect_timeout,
            pool_timeout=settings.database_pool_timeout,
            statement_timeout=settings.database_statement_timeout,
            filter_timeout=settings.filter_timeout,
        )
        sessions = db.sessionmaker(engine)
        router = Router(settings)
        sandbox = extract_sandbox.configure(settings.extract_workers, settings.extract_timeout)
        embedder = EmbeddingWorker(
            sessions, router, settings.embedding_lease, settings.embedding_poll, settings.embedding_retry_delay
        )
        app.state.core = Core(
            settings=settings,
            engine=engine,
            sessions=sessions,
            router=router,
            gateway_keys=KeyVerifier(sessions, GatewayKey, settings.auth_cache_ttl),
            project_keys=KeyVerifier(sessions, ProjectKey, settings.auth_cache_ttl),
            tokens=TokenVerifier(sessions, server_key(settings), settings.auth_cache_ttl),
            searcher=LazySearcher(router, postgres=not db.is_sqlite(settings.database_url)),
            embedder=embedder,
            accounting=Accounting.from_settings(settings, sessions),
        )
        embedder.start()
        app.state.core.accounting.start()
        try:
            yield
        finally:
            await app.state.core.accounting.stop()  # writes the last usage rows
            await embedder.stop()
            await router.aclose()
            sandbox.close()
            await engine.dispose()

    app = FastAPI(
        title="Parley",
        version=__version__,
        description="Self-hosted AI chat backend: an OpenAI-compatible gateway, project sessions, "
        "v8 conversations, knowledge bases and file extraction.",
        lifespan=lifespan,
        docs_url=None,  # served by parley.api.docs from local assets
        redoc_url=None,  # ReDoc loads from a CDN, so it would be blank offline
        # Parley's metrics are its own (/metrics). FastAPI's OpenTelemetry hooks looked up three
        # global providers on every request (about 6 us) to find that none is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    docs.install(app)
    app.include_router(v1.router)
    app.router.routes.insert(0, v1.chat_route)  # served without FastAPI's dependencies (see v1.py)
    app.router.routes[1:1] = [*anthropic.plain_routes, *gemini.plain_routes]  # likewise (api/plain.py)
    app.include_router(responses_api.router)
    app.include_router(anthropic.router)
    app.include_router(gemini.router)
    app.include_router(integration.router)
    app.include_router(v8.router)
    if settings.metrics:
        app.include_router(metrics_api.router)

    @app.get("/healthz", tags=["health"], summary="Liveness and version")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    cors.install(app, settings.cors_origins)  # preflights and error responses get its headers too
    limits = BodyLimits(settings.max_body_bytes, settings.max_upload_bytes, upload_paths=("/v8/files/",))
    hot = [v1.chat_route, *anthropic.plain_routes, *gemini.plain_routes]

    def stack() -> ASGIApp:
        """Front (request id, crash answer) → CORS, when configured → Entry (limits, HTTP
        metrics, the plain routes) → FastAPI's exception middleware → the router.

        Built here rather than by FastAPI, whose stack puts three more layers in front (a crash
        answer that Front gives, and telemetry and body-size hooks Parley does not use): each
        layer is a coroutine a request keeps for as long as it lasts."""
        handlers = {k: v for k, v in app.exception_handlers.items() if k not in (500, Exception)}
        rest = ExceptionMiddleware(AsyncExitStackMiddleware(app.router), handlers=handlers, debug=app.debug)
        inner: ASGIApp = Entry(
            rest, limits=limits, routes=hot, router=app.router, handlers=handlers, timed=settings.metrics
        )
        for cls, args, kwargs in reversed(app.user_middleware):
            inner = cls(inner, *args, **kwargs)
        return Front(inner)

    app.build_middleware_stack = stack  # type: ignore[method-assign]
    return app
