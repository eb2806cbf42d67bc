"""/v8/chat/conversations: list, create, get, update, soft delete."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from parley import conversations as store
from parley.api.common import core, json_body, json_response, validate
from parley.api.docs import body
from parley.api.v8.auth import V8Caller, user

router = APIRouter(prefix="/chat/conversations", tags=["v8 conversations"])


@router.get("", summary="The caller's conversations, newest first")
async def list_conversations(request: Request, caller: V8Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        rows = await store.list_for(db, caller.app_id, caller.user_id)
    return json_response([store.as_dict(r) for r in rows])


@router.post("", summary="Create a conversation (every field optional)", openapi_extra=body(store.ConversationCreate))
async def create_conversation(request: Request, caller: V8Caller = Depends(user)) -> Response:
    raw = await request.body()
    req = validate(store.ConversationCreate, await json_body(request) if raw.strip() else {})
    c = core(request)
    default = caller.integration.default_model or c.router.default_model
    async with c.sessions() as db:
        row = await store.create(db, caller.app_id, caller.user_id, req, default, c.router.chat)
    return json_response(store.as_dict(row))


@router.get("/{conversation_id}", summary="One conversation")
async def get_conversation(conversation_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        row = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
    return json_response(store.as_dict(row))


@router.put(
    "/{conversation_id}",
    summary="Update title, custom data, settings or reference settings",
    openapi_extra=body(store.ConversationCreate),
)
async def update_conversation(conversation_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    req = validate(store.ConversationCreate, await json_body(request))
    c = core(request)
    async with c.sessions() as db:
        await store.update(db, caller.app_id, caller.user_id, conversation_id, req, c.router.chat)
    return json_response({"message": "对话更新成功"})


@router.delete("/{conversation_id}", summary="Delete a conversation (soft)")
async def delete_conversation(conversation_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        await store.soft_delete(db, caller.app_id, caller.user_id, conversation_id)
    return json_response({"message": "对话删除成功"})
