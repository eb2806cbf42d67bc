"""/v1/responses: OpenAI's Responses API, through the one chat turn, stored on Parley's own
database so ``previous_response_id`` continues a conversation without resending it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from parley.api.common import json_body, json_response
from parley.api.docs import body
from parley.api.gateway_auth import gateway_caller
from parley.caller import Caller
from parley.chat.turn import TurnRequest, run
from parley.core import CoreDep
from parley.errors import BadRequest
from parley.responses import store
from parley.responses.encoder import ResponsesEncoder
from parley.responses.output import Draft
from parley.responses.request import ResponsesRequest, parse
from parley.responses.transcript import ResponseTranscript

router = APIRouter(prefix="/v1", tags=["Responses API"])


ResponsesCaller = Annotated[Caller, Depends(gateway_caller("responses"))]


def _key(caller: Caller) -> str:
    assert caller.key_id is not None, "gateway callers always have a key"
    return caller.key_id


@router.post(
    "/responses", summary="Create a model response (OpenAI's Responses API)", openapi_extra=body(ResponsesRequest)
)
async def create_response(request: Request, core: CoreDep, caller: ResponsesCaller) -> Response:
    parsed = parse(await json_body(request))
    draft = Draft(parsed.model, parsed.echo)
    draft.search_results = parsed.search_results
    transcript = ResponseTranscript(
        core.sessions, _key(caller), draft, parsed.items, parsed.previous_response_id, parsed.store, parsed.search
    )
    turn = TurnRequest(
        caller=caller,
        model=parsed.model,
        messages=[],
        params=parsed.params,
        stream=parsed.stream,
        system=parsed.system,
        transcript=transcript,
        memories=parsed.search,  # file_search: a gateway key may search any memory
    )
    return await run(core, turn, ResponsesEncoder(draft))


@router.get("/responses/{response_id}", summary="Retrieve a stored response")
async def get_response(response_id: str, request: Request, core: CoreDep, caller: ResponsesCaller) -> Response:
    if request.query_params.get("stream", "false").lower() not in ("false", "0", ""):
        raise BadRequest(
            "Parley does not stream stored responses again: retrieve them whole.",
            param="stream",
            code="unsupported_parameter",
        )
    async with core.sessions() as db:
        row = await store.owned(db, _key(caller), response_id)
    return json_response(row.body)


@router.delete("/responses/{response_id}", summary="Delete a stored response")
async def delete_response(response_id: str, core: CoreDep, caller: ResponsesCaller) -> Response:
    async with core.sessions() as db:
        await store.remove(db, _key(caller), response_id)
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


def _limit(raw: str | None) -> int:
    if raw is None:
        return 20
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise BadRequest(
            "Invalid value for 'limit': use an integer from 1 to 100.", param="limit", code="invalid_value"
        )
    return value


@router.get("/responses/{response_id}/input_items", summary="List a stored response's input items")
async def list_input_items(response_id: str, request: Request, core: CoreDep, caller: ResponsesCaller) -> Response:
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("Invalid value for 'order': use 'asc' or 'desc'.", param="order", code="invalid_value")
    limit = _limit(query.get("limit"))
    for value in query.getlist("include") + query.getlist("include[]"):
        raise BadRequest(
            f"Parley does not support the include value '{value}'.", param="include", code="unsupported_parameter"
        )
    async with core.sessions() as db:
        row = await store.owned(db, _key(caller), response_id)
        items = await store.input_items(db, row)
    return json_response(store.page(items, order, query.get("after"), query.get("before"), limit))
