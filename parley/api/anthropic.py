"""/v1/messages: Anthropic's Messages API over any configured model (docs/protocol.md)."""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Request
from starlette.responses import Response

from parley import tokens
from parley.api.common import json_body, json_response, validate
from parley.api.docs import body
from parley.api.gateway_auth import AnthropicCaller, gateway_caller
from parley.api.plain import PlainRoute
from parley.caller import Caller
from parley.chat.turn import TurnRequest, run
from parley.core import Core, CoreDep, get_core
from parley.dialects import anthropic

Body = dict[str, Any]

router = APIRouter(prefix="/v1", tags=["Anthropic Messages API"])


@router.post(
    "/messages", summary="Create a message (Anthropic's schema)", openapi_extra=body(anthropic.MessagesRequest)
)
async def create_message(request: Request, core: CoreDep, caller: AnthropicCaller) -> Response:
    # What the API docs show; requests are served by ``plain_routes`` below, the same code.
    return await _create(request, core, caller)


async def _create(request: Request, core: Core, caller: Caller) -> Response:
    req = _request(await json_body(request), anthropic.MessagesRequest)
    messages, params = anthropic.to_chat(req)
    turn = TurnRequest(
        caller=caller, model=req["model"], messages=messages, params=params, stream=bool(req.get("stream"))
    )
    return await run(core, turn, anthropic.StreamEncoder(req["model"]))


def _request(raw: Any, model: type[anthropic.MessagesRequest]) -> Body:
    """The request as ``to_chat`` reads it: as sent when it needs no validation (see
    ``anthropic.plain``), else as the model validates it (a 400 when it does not)."""
    if anthropic.plain(raw, counting=model is anthropic.CountTokensRequest):
        return cast(Body, raw)
    return validate(model, raw).model_dump()


@router.post(
    "/messages/count_tokens",
    summary="Count a message's input tokens (Anthropic's schema)",
    openapi_extra=body(anthropic.CountTokensRequest),
)
async def count_tokens(request: Request, core: CoreDep, caller: AnthropicCaller) -> Response:
    return await _count(request, core, caller)


async def _count(request: Request, core: Core, caller: Caller) -> Response:
    req = _request(await json_body(request), anthropic.CountTokensRequest)
    core.router.chat(req["model"])  # an unknown model is a 404, as it would be for a message
    messages, params = anthropic.to_chat(req)
    await tokens.ready()
    count = tokens.count_messages(messages)
    for tool in params.get("tools") or ():
        count += tokens.count(tokens.json_text(tool["function"]))
    return json_response({"input_tokens": count})


_authenticate = gateway_caller("anthropic")


async def _create_endpoint(request: Request) -> Response:
    core = get_core(request)
    return await _create(request, core, await _authenticate(request, core))


async def _count_endpoint(request: Request) -> Response:
    core = get_core(request)
    return await _count(request, core, await _authenticate(request, core))


# What serves the two routes (see api/plain.py): FastAPI's routing and dependency resolution
# were ~7% of a streamed message's CPU. Authentication comes first and errors go to the same
# handlers, so the answers are the same.
plain_routes = [
    PlainRoute("/v1/messages", _create_endpoint, methods=["POST"]),
    PlainRoute("/v1/messages/count_tokens", _count_endpoint, methods=["POST"]),
]
