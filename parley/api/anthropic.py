"""/v1/messages: Anthropic's Messages API over any configured model (docs/protocol.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from parley import tokens
from parley.api.common import json_body, json_response, validate
from parley.api.docs import body
from parley.api.gateway_auth import AnthropicCaller
from parley.chat.turn import TurnRequest, run
from parley.core import CoreDep
from parley.dialects import anthropic

router = APIRouter(prefix="/v1", tags=["Anthropic Messages API"])


@router.post(
    "/messages", summary="Create a message (Anthropic's schema)", openapi_extra=body(anthropic.MessagesRequest)
)
async def create_message(request: Request, core: CoreDep, caller: AnthropicCaller) -> Response:
    req = validate(anthropic.MessagesRequest, await json_body(request))
    messages, params = anthropic.to_chat(req)
    turn = TurnRequest(caller=caller, model=req.model, messages=messages, params=params, stream=bool(req.stream))
    return await run(core, turn, anthropic.StreamEncoder(req.model))


@router.post(
    "/messages/count_tokens",
    summary="Count a message's input tokens (Anthropic's schema)",
    openapi_extra=body(anthropic.CountTokensRequest),
)
async def count_tokens(request: Request, core: CoreDep, caller: AnthropicCaller) -> Response:
    req = validate(anthropic.CountTokensRequest, await json_body(request))
    core.router.chat(req.model)  # an unknown model is a 404, as it would be for a message
    messages, params = anthropic.to_chat(req)
    count = tokens.count_messages(messages)
    for tool in params.get("tools") or ():
        count += tokens.count(tokens.json_text(tool["function"]))
    return json_response({"input_tokens": count})
