"""Each dialect's error body for the one exception family, chosen by path prefix."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Send

from parley.api.jsonresp import json_response
from parley.dialects import anthropic, gemini
from parley.errors import ParleyError, Unauthorized, from_validation
from parley.storage.outage import is_database_outage, unavailable

log = logging.getLogger("parley.errors")


def openai_body(exc: ParleyError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}


def v8_body(exc: ParleyError) -> dict[str, Any]:
    # v8 (docs/protocol.md): authentication failures use OpenAI's envelope, everything else {"error": "…"}.
    if isinstance(exc, Unauthorized):
        return openai_body(exc)
    return {"error": exc.message}


def body_for(path: str, exc: ParleyError) -> dict[str, Any]:
    """Each dialect's error body, by where the request went."""
    if path.startswith("/v8"):
        return v8_body(exc)
    if path.startswith("/v1/messages"):
        return anthropic.error_body(exc)
    if path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path.rsplit("/", 1)[-1]):
        return gemini.error_body(exc)
    return openai_body(exc)


async def send_error(send: Send, path: str, exc: ParleyError, close: bool = False) -> None:
    """Answer ``exc`` straight on the ASGI ``send``: for the layers in front of the routes."""
    body = orjson.dumps(body_for(path, exc))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install(app: FastAPI) -> None:
    @app.exception_handler(ParleyError)
    async def _parley(request: Request, exc: ParleyError) -> Response:
        if exc.status >= 500:
            log.warning("request failed", extra={"fields": {"path": request.url.path, "error": exc.message}})
        return json_response(body_for(request.url.path, exc), exc.status, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        err = from_validation(list(exc.errors()))
        return json_response(body_for(request.url.path, err), 400)

    @app.exception_handler(ValidationError)
    async def _invalid_model(request: Request, exc: ValidationError) -> Response:
        err = from_validation([dict(e) for e in exc.errors()])
        return json_response(body_for(request.url.path, err), 400)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        err = ParleyError(str(exc.detail), status=exc.status_code)
        err.type = "invalid_request_error"
        if exc.status_code == 404:
            err.message = f"Unknown route: {request.method} {request.url.path}"
        return json_response(body_for(request.url.path, err), exc.status_code, headers=dict(exc.headers or {}))

    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(OSError)
    async def _database(request: Request, exc: Exception) -> Response:
        if not is_database_outage(exc):
            raise exc  # not the database being away: a crash (api/front.py answers it)
        log.warning("database unavailable", extra={"fields": {"path": request.url.path, "error": str(exc)[:300]}})
        err = unavailable()
        return json_response(body_for(request.url.path, err), err.status, headers=err.headers)

    @app.exception_handler(ClientDisconnect)
    async def _left(request: Request, exc: ClientDisconnect) -> Response:
        # The client went away before its request had all arrived: nothing failed, nobody to answer.
        log.info("client left before sending the whole request", extra={"fields": {"path": request.url.path}})
        return Response(status_code=499)  # (the status nginx logs for this)
