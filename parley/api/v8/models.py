"""GET /v8/models."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from parley.api.common import core, json_response
from parley.api.v8.auth import V8Caller, user
from parley.providers.routing import model_card

router = APIRouter(tags=["v8 models"])


@router.get("/models", summary="List the chat models")
async def list_models(request: Request, caller: V8Caller = Depends(user)) -> Response:
    routes = core(request).router.routes.values()
    return json_response([model_card(r.public_name, r.owned_by) for r in routes if r.kind == "chat"])
