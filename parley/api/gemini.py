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
from parley.api.gateway_auth import GeminiCaller, gateway_caller
from parley.api.plain import PlainRoute
from parley.caller import Caller
from parley.chat.turn import TurnRequest, run
from parley.core import Core, CoreDep, get_core
from parley.dialects import gemini
from parley.errors import BadRequest, NotFound

router = APIRouter(tags=["Gemini API"])
METHODS = ("generateContent", "streamGenerateContent", "countTokens")


async def _call(target: str, request: Request, core: CoreDep, caller: GeminiCaller) -> Response:
    # What the API docs show; requests are served by ``plain_routes`` below, the same code.
    return await _serve(target, request, core, caller)


async def _serve(target: str, request: Request, core: Core, caller: Caller) -> Response:
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
        await tokens.ready()
        count = tokens.count_messages(messages)
        return json_response({"totalTokens": count})
    stream = method == "streamGenerateContent"
    turn = TurnRequest(caller=caller, model=model, messages=messages, params=params, stream=stream)
    return await run(core, turn, gemini.StreamEncoder(model))


_authenticate = gateway_caller("gemini")


async def _endpoint(request: Request) -> Response:
    core = get_core(request)
    caller = await _authenticate(request, core)
    return await _serve(request.path_params["target"], request, core, caller)


plain_routes: list[PlainRoute] = []  # what serves them (see api/plain.py)
for version in ("v1beta", "v1"):
    path = f"/{version}/models/{{target:path}}"
    router.add_api_route(
        path,
        _call,
        methods=["POST"],
        summary="generateContent, streamGenerateContent or countTokens (Gemini's schema)",
        include_in_schema=version == "v1beta",
    )
    plain_routes.append(PlainRoute(path, _endpoint, methods=["POST"]))
