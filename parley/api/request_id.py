"""Request IDs: a client's own ``x-request-id`` if usable, else a new ``req_…`` one.

``current`` holds the request's ID in its task (logging reads it there); ``api/front.py`` sets
it and stamps every response with it.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar

current: ContextVar[str | None] = ContextVar("parley_request_id", default=None)

HEADER = b"x-request-id"
_MAX_LEN = 200


def new_id() -> str:
    return "req_" + secrets.token_hex(12)


def usable(value: bytes) -> str | None:
    """A client's ID, kept if of sane length and printable ASCII (it goes into logs and headers)."""
    if not value or len(value) > _MAX_LEN:
        return None
    text = value.decode("latin-1")
    return text if text.isprintable() and text.isascii() else None
