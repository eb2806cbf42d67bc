"""Routes served without FastAPI's routing and dependency resolution, for the busiest requests.

A documented (FastAPI) route stays registered for each one, so the API docs list it; the plain
route is put at the front of the app's routes and takes only the requests it matches fully
(path and method). Anything else (a method the route does not allow, a path it does not match)
goes on to the documented routes, exactly as if the plain route were not there.
"""

from __future__ import annotations

from starlette.routing import Match, Route
from starlette.types import Scope


class PlainRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}  # a 405 (and its Allow header) stays the documented routes' answer
        child["route"] = self  # as FastAPI's routes do: the HTTP metrics label requests by it
        return match, child
