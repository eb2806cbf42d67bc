"""Gemini's generateContent API over any configured model (docs/protocol.md).

``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent`` (SSE with
``?alt=sse``) and ``:countTokens``, and the same under ``/v1`` (the ``google-genai`` SDK's
default API version differs between releases).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from parley import tokens
from parley.api.common import json_body, json_response
from parley.api.gateway_auth import GeminiCaller
from parley.chat.turn import TurnRequest, run
from parley.core import CoreDep
from parley.dialects import gemini
from parley.errors import BadRequest, NotFound

router = APIRouter(tags=["Gemini API"])
METHODS = ("generateContent", "streamGenerateContent", "countTokens")


async def _call(target: str, request: Request, core: CoreDep, caller: GeminiCaller) -> Response:
    model, _, method = target.rpartition(":")
    if method not in METHODS or not model:
        raise NotFound(f"Unknown method {method!r}: use one of {', '.join(METHODS)}")
    model = model.removeprefix("models/")
    raw = await json_body(request)
    if not isinstance(raw, dict):
        raise BadRequest("The request body must be a JSON object.")
    messages, params = gemini.to_chat(raw)
    if method == "countTokens":
        core.router.chat(model)
        count = tokens.count_messages(messages)
        return json_response({"totalTokens": count})
    stream = method == "streamGenerateContent"
    turn = TurnRequest(caller=caller, model=model, messages=messages, params=params, stream=stream)
    return await run(core, turn, gemini.StreamEncoder(model))


for version in ("v1beta", "v1"):
    router.add_api_route(
        f"/{version}/models/{{target:path}}",
        _call,
        methods=["POST"],
        summary="generateContent, streamGenerateContent or countTokens (Gemini's schema)",
        include_in_schema=version == "v1beta",
    )
