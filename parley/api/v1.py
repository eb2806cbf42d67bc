"""/v1: the OpenAI-compatible gateway (docs/protocol.md)."""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from parley import tokens
from parley.api.common import json_body, json_response, request_id, validate
from parley.api.docs import body
from parley.api.openai_encoder import OpenAIEncoder
from parley.api.openai_schemas import ChatRequest, EmbeddingRequest
from parley.auth.headers import gateway_key
from parley.caller import Caller
from parley.chat.turn import TurnRequest, run
from parley.core import Core, CoreDep
from parley.errors import BadRequest, ModelNotFound
from parley.providers.routing import model_card

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible gateway"])


async def gateway_caller(request: Request, core: CoreDep) -> Caller:
    """Authenticate a gateway key (Bearer, ``x-api-key`` or ``x-goog-api-key``) into a caller."""
    identity = await core.gateway_keys.verify(gateway_key(request.headers))
    return Caller("gateway", request_id(request), "openai", key_id=identity.id)


GatewayCaller = Annotated[Caller, Depends(gateway_caller)]

_NOT_PARAMS = ("model", "messages", "stream", "stream_options")


@router.post("/chat/completions", summary="Create a chat completion (OpenAI's schema)", openapi_extra=body(ChatRequest))
async def chat_completions(request: Request, core: CoreDep, caller: GatewayCaller) -> Response:
    raw = await json_body(request)
    req = validate(ChatRequest, raw)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    turn = TurnRequest(
        caller=caller,
        model=req.model,
        messages=raw["messages"],  # as sent: fields Parley does not know pass through
        params={k: v for k, v in raw.items() if k not in _NOT_PARAMS},
        stream=bool(req.stream),
    )
    return await run(core, turn, OpenAIEncoder(include_usage))


def _cards(c: Core) -> list[dict[str, Any]]:
    cards = [model_card(r.public_name, r.owned_by) for r in c.router.routes.values()]
    cards.append(model_card(c.router.embedding_names()[0], "parley"))
    return cards


@router.get("/models", summary="List the models this gateway routes")
async def list_models(core: CoreDep, caller: GatewayCaller) -> Response:
    return json_response({"object": "list", "data": _cards(core)})


@router.get("/models/{model:path}", summary="Describe one model")
async def get_model(model: str, core: CoreDep, caller: GatewayCaller) -> Response:
    for card in _cards(core):
        if card["id"] == model:
            return json_response(card)
    raise ModelNotFound(f"The model `{model}` does not exist or you do not have access to it.", param="model")


def _texts(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if raw and isinstance(raw[0], int):
        return [tokens.encoding().decode(raw)]
    if raw and isinstance(raw[0], list):
        return [tokens.encoding().decode(ids) for ids in raw]
    return list(raw)


@router.post("/embeddings", summary="Create embeddings", openapi_extra=body(EmbeddingRequest))
async def embeddings(request: Request, core: CoreDep, caller: GatewayCaller) -> Response:
    req = validate(EmbeddingRequest, await json_body(request))
    texts = _texts(req.input)
    if not texts or any(not t for t in texts):
        raise BadRequest("'input' must be a non-empty string or a list of non-empty strings.", param="input")
    started = time.perf_counter()
    async with core.accounting.embedding(caller, core.router, req.model) as ticket:  # limits, usage, metrics
        result = await core.router.embed(req.model, texts)
        ticket.usage = {"prompt_tokens": result.prompt_tokens}
    data = []
    for i, vec in enumerate(result.vectors):
        if req.dimensions and req.dimensions < len(vec):
            cut = np.asarray(vec[: req.dimensions], dtype=np.float32)
            vec = (cut / (np.linalg.norm(cut) or 1.0)).tolist()
        value: Any = vec
        if req.encoding_format == "base64":
            value = base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    headers = {"x-parley-elapsed-ms": f"{(time.perf_counter() - started) * 1000:.1f}"}
    return json_response({"object": "list", "data": data, "model": req.model, "usage": usage}, headers=headers)
