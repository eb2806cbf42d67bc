"""Cross-origin access for browser apps (``cors_origins``), off unless configured.

Browsers send a preflight ``OPTIONS`` before a call with ``Authorization`` or a JSON body;
Starlette's middleware answers it and marks every actual response, streamed ones included
(the headers go out with the response start, before the first event).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

METHODS = ("GET", "POST", "PUT", "DELETE")
# Any request header: the official SDKs add their own (x-stainless-*, anthropic-beta,
# x-goog-api-client) beside the keys, X-Session-ID and content-type the dialects read, and a
# preflight that refused one would fail the whole call.
REQUEST_HEADERS = ("*",)
# What a page's script may read from a response: the session a project call used, the request id.
RESPONSE_HEADERS = ("x-session-id", "x-request-id")


def install(app: FastAPI, origins: list[str]) -> None:
    """Allow ``origins`` (``["*"]`` for any); an empty list leaves cross-origin calls refused."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=METHODS,
        allow_headers=REQUEST_HEADERS,
        expose_headers=RESPONSE_HEADERS,
        max_age=600,
    )
