"""The outermost layer of the app: no exception leaves it while the connection can be kept.

Starlette's ServerErrorMiddleware answers an unhandled exception through the app's 500 handler
and then raises it again "for the server to log"; uvicorn, seeing an exception after a complete
response, closes the socket without a ``Connection: close``, so a client's next pooled request
met a reset connection. Here every exception ends: logged once, and answered in the dialect's
shape if nothing was sent yet. Only one that breaks off a response half-sent (a stream) goes on
to the server, which must close the connection: that is the one honest end of such a response.
"""

from __future__ import annotations

import logging

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.api import request_id
from parley.errors import ParleyError

log = logging.getLogger("parley.errors")
CRASH_MESSAGE = "The server had an error while processing your request."


def crash_error() -> ParleyError:
    """The 500 a crash answers, naming the request (as OpenAI's do) so a report can be traced."""
    rid = request_id.current.get()
    return ParleyError(CRASH_MESSAGE + (f" (request ID {rid})" if rid else ""))


class CrashGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def tracked(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error", extra={"fields": {"path": scope.get("path", "")}})
            if finished:
                return  # answered already (the 500 handler): the connection stays usable
            if started:
                raise
            await _answer(scope, send)


async def _answer(scope: Scope, send: Send) -> None:
    from parley.api.errors import body_for  # errors installs this guard

    body = orjson.dumps(body_for(scope.get("path", ""), crash_error()))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
