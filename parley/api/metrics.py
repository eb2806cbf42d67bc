"""``GET /metrics`` (Prometheus' text format) and the HTTP request metrics by route template."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import func, select
from starlette.responses import Response
from starlette.types import Scope

from parley import metrics
from parley.auth.headers import bearer_or_bare
from parley.core import CoreDep
from parley.errors import Unauthorized
from parley.storage.models import MemoryChunk

router = APIRouter(tags=["health"])

SAMPLE_TIMEOUT = 2.0  # seconds the embedding queue count may take; then the last sample stands


async def _sample_embedding_queue(request: Request) -> None:
    core = request.app.state.core
    waiting = MemoryChunk.embedding_status.in_(("pending", "processing"))
    try:
        async with asyncio.timeout(SAMPLE_TIMEOUT), core.sessions() as db:
            depth = await db.scalar(select(func.count()).select_from(MemoryChunk).where(waiting))
        metrics.EMBEDDING_QUEUE.set(depth or 0)
    except Exception:  # noqa: BLE001 - a scrape still answers with everything else
        pass


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
async def get_metrics(request: Request, core: CoreDep) -> Response:
    token = core.settings.metrics_token
    if token is not None:
        presented = bearer_or_bare(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
            raise Unauthorized("This endpoint wants the metrics token: Authorization: Bearer <metrics_token>.")
    await _sample_embedding_queue(request)
    metrics.reap_dead_workers()
    body = await asyncio.to_thread(metrics.render) if metrics.MULTIPROCESS_DIR else metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def route_template(scope: Scope) -> str:
    """The matched route's path with every path parameter put back as ``{name}``.

    Worked out from the request's own path because a route of a nested router only knows its
    part of the path; each value is replaced at a segment boundary, so no id is left in.
    """
    if scope.get("route") is None:
        return "unmatched"
    out: str = scope["path"]
    params = scope.get("path_params")
    if not params:  # the chat routes: the path is the template
        return out
    for name, value in params.items():
        text = "/" + str(value)
        at = out.rfind(text)
        while at >= 0 and not (at + len(text) == len(out) or out[at + len(text)] == "/"):
            at = out.rfind(text, 0, at)
        if at >= 0:
            out = out[:at] + "/{" + name + "}" + out[at + len(text) :]
    return out
