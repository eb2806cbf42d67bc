"""/v1: the OpenAI-compatible gateway (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import base64
import importlib
import sys
import time
from types import ModuleType
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from parley import tokens
from parley.api.common import json_body, json_response, validate
from parley.api.docs import body
from parley.api.gateway_auth import OpenAICaller, gateway_caller
from parley.api.openai_encoder import OpenAIEncoder
from parley.api.openai_schemas import ChatRequest, EmbeddingRequest
from parley.api.plain import PlainRoute
from parley.caller import Caller
from parley.chat.turn import TurnRequest, run
from parley.config import LOCAL_EMBEDDING_MODEL
from parley.core import Core, CoreDep, get_core
from parley.errors import BadRequest, ModelNotFound
from parley.providers.base import EmbeddingInputs
from parley.providers.routing import model_card

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible gateway"])


GatewayCaller = OpenAICaller

_NOT_PARAMS = ("model", "messages", "stream", "stream_options")


@router.post("/chat/completions", summary="Create a chat completion (OpenAI's schema)", openapi_extra=body(ChatRequest))
async def chat_completions(request: Request, core: CoreDep, caller: GatewayCaller) -> Response:
    # What the API docs show; requests are served by ``chat_route`` below, the same code.
    return await _chat(request, core, caller)


async def _chat(request: Request, core: Core, caller: Caller) -> Response:
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


_authenticate = gateway_caller("openai")


async def _chat_endpoint(request: Request) -> Response:
    core = get_core(request)
    return await _chat(request, core, await _authenticate(request, core))


# The gateway's busiest route as a plain Starlette route, put ahead of the documented one:
# FastAPI's dependency resolution cost ~18 us a request here. Authentication comes first and
# errors go to the same handlers, so the answers are the same.
chat_route = PlainRoute("/v1/chat/completions", _chat_endpoint, methods=["POST"])


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


_INPUT_SHAPES = (
    "a non-empty string, an array of non-empty strings, an array of token ids or an array of token-id arrays"
)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _inputs(raw: Any) -> EmbeddingInputs:
    """OpenAI's four input shapes, as texts or token-id arrays; anything else is a 400 on ``input``.

    Token ids stay ids here: the router hands them to upstreams as they are, and decodes them
    for models that take text (never with another tokenizer than the one they came from).
    """
    if isinstance(raw, str) and raw:
        return [raw]
    if isinstance(raw, list) and raw:
        if all(isinstance(x, str) and x for x in raw):
            return list(raw)
        if all(_is_id(x) for x in raw):
            return [list(raw)]
        if all(isinstance(x, list) and x and all(_is_id(i) for i in x) for x in raw):
            return [list(x) for x in raw]
    raise BadRequest(f"'input' must be {_INPUT_SHAPES}.", param="input", code="invalid_value")


async def _numpy() -> ModuleType:
    """numpy, imported off the event loop the first time: a worker that never embeds never has
    it resident (~15 MB)."""
    loaded = sys.modules.get("numpy")
    return loaded if loaded is not None else await asyncio.to_thread(importlib.import_module, "numpy")


@router.post("/embeddings", summary="Create embeddings", openapi_extra=body(EmbeddingRequest))
async def embeddings(request: Request, core: CoreDep, caller: GatewayCaller) -> Response:
    body = await json_body(request)
    # Checked before the schema, whose union would word a mixed array as "not a valid string".
    inputs = _inputs(body["input"]) if isinstance(body, dict) and "input" in body else []
    req = validate(EmbeddingRequest, body)
    started = time.perf_counter()
    async with core.accounting.embedding(caller, core.router, req.model) as ticket:  # limits, usage, metrics
        if core.router.check_embedding(req.model) == LOCAL_EMBEDDING_MODEL:
            await tokens.ready()  # the packaged model counts the tokens of what it embeds
        if inputs and not isinstance(inputs[0], str):
            await tokens.ready(tokens.EMBEDDING_ENCODING)  # token ids are decoded for some upstreams
        result = await core.router.embed(req.model, inputs)
        ticket.usage = {"prompt_tokens": result.prompt_tokens}
    data = []
    np = await _numpy() if req.dimensions or req.encoding_format == "base64" else None
    for i, vec in enumerate(result.vectors):
        if np is not None and req.dimensions and req.dimensions < len(vec):
            cut = np.asarray(vec[: req.dimensions], dtype=np.float32)
            vec = (cut / (np.linalg.norm(cut) or 1.0)).tolist()
        value: Any = vec
        if np is not None and req.encoding_format == "base64":
            value = base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    headers = {"x-parley-elapsed-ms": f"{(time.perf_counter() - started) * 1000:.1f}"}
    return json_response({"object": "list", "data": data, "model": req.model, "usage": usage}, headers=headers)
