"""Small helpers every dialect uses: the app's core, JSON bodies, JSON responses."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from parley.api.jsonresp import json_response as json_response  # re-exported for the routers
from parley.api.request_id import new_id
from parley.api.sanitize import check_body
from parley.core import Core, get_core
from parley.errors import BadRequest, from_validation

M = TypeVar("M", bound=BaseModel)


def core(request: Request) -> Core:
    return get_core(request)


def request_id(request: Request) -> str:
    """This request's ID (set by api/front.py; a new one outside it)."""
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else new_id()


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise BadRequest("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"We could not parse the JSON body of your request: {exc.msg}.", code="invalid_json") from None
    return check_body(raw, data)  # no NUL, bounded nesting: see api/sanitize.py


def validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(list(exc.errors())) from None
