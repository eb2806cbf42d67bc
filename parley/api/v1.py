"""/v1: the OpenAI-compatible gateway (seed 002)."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from parley.api.common import core, json_body, json_response, validate
from parley.api.docs import body
from parley.api.errors import openai_body
from parley.api.openai_schemas import ChatRequest, EmbeddingRequest
from parley.api.sse import DONE_LINE, PING_LINE, event, sse_response
from parley.auth.headers import gateway_key
from parley.chat.completions import ChatStream, complete, open_stream
from parley.chat.relay import PING
from parley.errors import BadRequest, ModelNotFound, ParleyError
from parley.providers.base import EmbeddingInputs
from parley.providers.routing import model_card

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible gateway"])


async def _authenticate(request: Request) -> None:
    await core(request).gateway_keys.verify(gateway_key(request.headers))


@router.post("/chat/completions", summary="Create a chat completion (OpenAI's schema)", openapi_extra=body(ChatRequest))
async def chat_completions(request: Request) -> Response:
    await _authenticate(request)
    body = await json_body(request)
    req = validate(ChatRequest, body)
    c = core(request)
    route = c.router.chat(req.model)
    if not req.stream:
        return json_response(await complete(route, body))
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    stream = await open_stream(route, body, c.settings.sse_ping_interval)
    return sse_response(_sse(stream, include_usage))


async def _sse(stream: ChatStream, include_usage: bool) -> AsyncIterator[bytes]:
    try:
        async for item in stream:
            yield PING_LINE if item is PING else event(item)
        if include_usage:
            yield event(stream.usage_chunk())
        yield DONE_LINE
    except ParleyError as exc:
        # Headers are gone already: the error travels as an SSE event, then the stream ends.
        yield event(openai_body(exc))


def _cards(request: Request) -> list[dict[str, Any]]:
    c = core(request)
    cards = [model_card(r.public_name, r.owned_by) for r in c.router.routes.values()]
    cards.append(model_card(c.router.embedding_names()[0], "parley"))
    return cards


@router.get("/models", summary="List the models this gateway routes")
async def list_models(request: Request) -> Response:
    await _authenticate(request)
    return json_response({"object": "list", "data": _cards(request)})


@router.get("/models/{model:path}", summary="Describe one model")
async def get_model(model: str, request: Request) -> Response:
    await _authenticate(request)
    for card in _cards(request):
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


@router.post("/embeddings", summary="Create embeddings", openapi_extra=body(EmbeddingRequest))
async def embeddings(request: Request) -> Response:
    await _authenticate(request)
    body = await json_body(request)
    # Checked before the schema, whose union would word a mixed array as "not a valid string".
    inputs = _inputs(body["input"]) if isinstance(body, dict) and "input" in body else []
    req = validate(EmbeddingRequest, body)
    started = time.perf_counter()
    result = await core(request).router.embed(req.model, inputs)
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
