"""Routes served without FastAPI's routing and dependency resolution, for the busiest requests.

A documented (FastAPI) route stays registered for each one, so the API docs list it; the plain
route is served by ``api/entry.py`` (``serve`` below) and takes only the requests it matches
fully (path and method). Anything else (a method the route does not allow, a path it does not
match) goes on to the documented routes, exactly as if the plain route were not there.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

Handler = Callable[[Request, Any], Response | Awaitable[Response]]  # as Starlette types them


class PlainRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}  # a 405 (and its Allow header) stays the documented routes' answer
        child["route"] = self  # as FastAPI's routes do: the HTTP metrics label requests by it
        return match, child


def handler_for(handlers: Mapping[Any, Handler], exc: Exception) -> Handler | None:
    """The application's handler for ``exc``, found the way Starlette finds it: a status code's
    own for an HTTPException, else the nearest class in the exception's ancestry."""
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


async def serve(route: PlainRoute, scope: Scope, receive: Receive, send: Send, handlers: Mapping[Any, Handler]) -> None:
    """Call the route's endpoint and send its response: what Starlette's route, its request
    wrapper and its exception wrapper do, in one frame instead of four (a request keeps them
    all for as long as it lasts, a whole stream). An exception the endpoint raises is answered by
    the application's handler for it; one raised while the response is being sent (a stream,
    its head long gone) goes on, as nothing can answer it any more."""
    request = Request(scope, receive, send)
    try:
        response = await route.endpoint(request)
    except Exception as exc:
        handler = handler_for(handlers, exc)
        if handler is None:
            raise
        if inspect.iscoroutinefunction(handler):
            response = await handler(request, exc)
        else:  # a plain function, run in a thread as Starlette runs it
            response = await run_in_threadpool(handler, request, exc)
        exc.__traceback__ = None  # the frames of a failed request are not kept alive by it
    await response(scope, receive, send)
