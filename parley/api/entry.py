"""The layer every request enters the routes through: what each request must satisfy, the HTTP
metrics, and the busiest routes served straight away.

In order: a body announced past its size limit is refused (413), then a URL carrying an
encoded NUL (400, docs/limits.md); the body is counted as it streams in (413 past the limit).
A request one of the plain routes (``api/plain.py``) matches fully is served here; anything else
goes on to FastAPI's exception middleware and router. One layer does all of it because each
layer is a coroutine and a wrapped ``send`` or ``receive`` that a request keeps for as long as
it lasts: for a stream, its whole life.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from typing import Any

from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley import metrics
from parley.api.errors import send_error
from parley.api.limits import BodyLimits, announced_too_large, counted, refuse
from parley.api.metrics import route_template
from parley.api.plain import Handler, PlainRoute, serve
from parley.api.sanitize import nul_in_url


class Entry:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: BodyLimits,
        routes: list[PlainRoute],
        router: Router,
        handlers: Mapping[Any, Handler],
        timed: bool,
    ) -> None:
        """``app``: where requests no plain route takes go; ``handlers``: the application's
        exception handlers, as its exception middleware has them; ``timed``: count and time
        every request in the HTTP metrics (by method, route template and status)."""
        self.app = app
        self.limits = limits
        self.routes = routes
        self.router = router
        self.handlers = handlers
        self.timed = timed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        # A plain function that hands back the inner send's awaitable: every message of a
        # stream passes here, and an ``async def`` would add a coroutine per message.
        def watched(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        out = watched if self.timed else send
        path = scope["path"]
        limit = self.limits.of(path)
        try:
            if announced_too_large(scope, limit):
                await refuse(out, path, limit)
                return
            if (error := nul_in_url(scope)) is not None:
                await send_error(out, path, error)
                return
            receive = counted(receive, limit)
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    scope.setdefault("router", self.router)
                    await serve(route, scope, receive, out, self.handlers)
                    return
            await self.app(scope, receive, out)
        finally:
            if self.timed:
                metrics.http_done(scope["method"], route_template(scope), status, time.perf_counter() - began)
