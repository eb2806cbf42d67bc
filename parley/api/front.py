"""The outermost layer of the app: the request's ID, and no exception leaves while the
connection can be kept.

One layer does both (and what Starlette's ServerErrorMiddleware did) because every layer is a
coroutine and a wrapped ``send`` that a request keeps for as long as it lasts: for a stream,
its whole life, a thousand times over with a thousand open streams.

- Request IDs: every response carries ``x-request-id``, and every log line of the request too.
  A client's own ``x-request-id`` (sane length, printable) is kept, so its IDs and Parley's logs
  line up; otherwise a new ``req_…`` ID is made. It lives in a context variable for the
  request's task (logging reads it there) and in ``scope["state"]`` for the handlers.
- Crashes: an unhandled exception is logged once and answered with a 500 in the dialect's shape
  if nothing was sent yet; the connection stays usable. (Starlette's ServerErrorMiddleware
  raised it again after answering "for the server to log", and uvicorn, seeing an exception
  after a complete response, closed the socket without a ``Connection: close``, so a client's
  next pooled request met a reset connection.) Only one that breaks off a response half-sent
  (a stream) goes on to the server, which must close the connection: that is the one honest
  end of such a response.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.api import request_id
from parley.api.guard import answer_crash, log


class Front:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == request_id.HEADER:
                rid = request_id.usable(value)
                break
        rid = rid or request_id.new_id()
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id.current.set(rid)
        header = (request_id.HEADER, rid.encode())
        started = finished = False

        async def stamped(message: Message) -> None:
            nonlocal started, finished
            kind = message["type"]
            if kind == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), header]
            elif kind == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, stamped)
        except Exception:
            log.exception("unhandled error", extra={"fields": {"path": scope.get("path", "")}})
            if finished:
                return  # answered already: the connection stays usable
            if started:
                raise
            await answer_crash(scope, stamped)
        finally:
            request_id.current.reset(token)
