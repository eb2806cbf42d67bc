"""/v8/chat/conversations: list, create, get, update, soft delete."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from parley import conversations as store
from parley.api.common import core, json_body, json_response, validate
from parley.api.docs import body
from parley.api.v8.auth import Caller, user
from parley.memory.filters import content_conditions
from parley.storage.models import Conversation, now

router = APIRouter(prefix="/chat/conversations", tags=["v8 conversations"])


def _check_model(request: Request, settings: dict) -> None:
    core(request).router.chat(settings["model"])  # an unknown model is refused when set, not when used


def _check_filter(request: Request, references: dict) -> dict:
    """A memory filter is refused when set (400), not at every turn that would use it."""
    postgres = core(request).searcher.postgres
    content_conditions(references["memories"].get("content_filter"), "postgresql" if postgres else "sqlite")
    return references


@router.get("", summary="The caller's conversations, newest first")
async def list_conversations(request: Request, caller: Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        rows = await store.list_for(db, caller.app_id, caller.user_id)
    return json_response([store.as_dict(r) for r in rows])


@router.post("", summary="Create a conversation (every field optional)", openapi_extra=body(store.ConversationCreate))
async def create_conversation(request: Request, caller: Caller = Depends(user)) -> Response:
    raw = await request.body()
    req = validate(store.ConversationCreate, await json_body(request) if raw.strip() else {})
    c = core(request)
    settings = store.merged_settings(None, req.settings)
    settings["model"] = settings["model"] or caller.integration.default_model or c.router.default_model
    _check_model(request, settings)
    row = Conversation(
        integration_id=caller.app_id,
        external_user_id=caller.user_id,
        title=req.title,
        settings=settings,
        reference_settings=_check_filter(request, store.merged_references(None, req.reference_settings)),
        custom_data=req.custom_data,
    )
    async with c.sessions() as db:
        db.add(row)
        await db.commit()
    return json_response(store.as_dict(row))


@router.get("/{conversation_id}", summary="One conversation")
async def get_conversation(conversation_id: str, request: Request, caller: Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        row = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
    return json_response(store.as_dict(row))


@router.put(
    "/{conversation_id}",
    summary="Update title, custom data, settings or reference settings",
    openapi_extra=body(store.ConversationCreate),
)
async def update_conversation(conversation_id: str, request: Request, caller: Caller = Depends(user)) -> Response:
    req = validate(store.ConversationCreate, await json_body(request))
    async with core(request).sessions() as db:
        row = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
        fields = req.model_fields_set
        if "title" in fields:
            row.title = req.title
        if "custom_data" in fields:
            row.custom_data = req.custom_data
        if req.settings is not None:
            row.settings = store.merged_settings(row.settings, req.settings)
            _check_model(request, row.settings)
        if req.reference_settings is not None:
            references = store.merged_references(row.reference_settings, req.reference_settings)
            row.reference_settings = _check_filter(request, references)
        row.updated_at = now()
        await db.commit()
    return json_response({"message": "对话更新成功"})


@router.delete("/{conversation_id}", summary="Delete a conversation (soft)")
async def delete_conversation(conversation_id: str, request: Request, caller: Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        row = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
        row.status = "deleted"
        row.deleted_at = now()
        await db.commit()
    return json_response({"message": "对话删除成功"})
