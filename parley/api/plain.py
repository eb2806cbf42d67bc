"""Routes served without FastAPI's routing and dependency resolution, for the busiest requests.

A documented (FastAPI) route stays registered for each one, so the API docs list it; the plain
route is put at the front of the app's routes and takes only the requests it matches fully
(path and method). Anything else (a method the route does not allow, a path it does not match)
goes on to the documented routes, exactly as if the plain route were not there.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send


class PlainRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}  # a 405 (and its Allow header) stays the documented routes' answer
        child["route"] = self  # as FastAPI's routes do: the HTTP metrics label requests by it
        return match, child


class HotRoutes:
    """The innermost middleware: a request one of ``routes`` matches fully goes straight to it.

    It skips what lies between the middleware and a route (the exception middleware, FastAPI's
    exit-stack middleware, the router and its match over every route): seven coroutine frames
    that each of these requests kept for as long as it lasted (a whole stream) and a share of
    its CPU. Exceptions go to the application's handlers exactly as they would in that path:
    the route's own wrapper looks them up in the same ``starlette.exception_handlers`` scope
    entry the exception middleware would have set.
    """

    def __init__(self, app: ASGIApp, routes: list[PlainRoute], application: Starlette) -> None:
        self.app = app
        self.routes = routes
        self.application = application
        self._handlers: tuple[Any, Any] | None = None

    def handlers(self) -> tuple[Any, Any]:
        if self._handlers is None:  # the handlers as the exception middleware arranges them
            handlers = {k: v for k, v in self.application.exception_handlers.items() if k not in (500, Exception)}
            built = ExceptionMiddleware(self.app, handlers=handlers)
            self._handlers = (built._exception_handlers, built._status_handlers)
        return self._handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    scope.setdefault("router", self.application.router)
                    scope["starlette.exception_handlers"] = self.handlers()
                    await route.handle(scope, receive, send)
                    return
        await self.app(scope, receive, send)
