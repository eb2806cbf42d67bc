"""Request IDs: every response carries ``x-request-id``, and every log line of the request too.

A client's own ``x-request-id`` (sane length, printable) is kept, so its IDs and Parley's logs
line up; otherwise a new ``req_…`` ID is made. The ID lives in a context variable for the
request's task (logging reads it there) and in ``scope["state"]`` for the handlers.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

current: ContextVar[str | None] = ContextVar("parley_request_id", default=None)

HEADER = b"x-request-id"
_MAX_LEN = 200


def new_id() -> str:
    return "req_" + secrets.token_hex(12)


def _usable(value: bytes) -> str | None:
    if not value or len(value) > _MAX_LEN:
        return None
    text = value.decode("latin-1")
    return text if text.isprintable() and text.isascii() else None


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == HEADER:
                rid = _usable(value)
                break
        rid = rid or new_id()
        scope.setdefault("state", {})["request_id"] = rid
        token = current.set(rid)
        header = (HEADER, rid.encode())

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, stamped)
        finally:
            current.reset(token)
