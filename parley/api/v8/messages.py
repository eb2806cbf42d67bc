"""/v8/chat/conversations/{id}/messages and generate-title."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from parley import conversations as store
from parley.api.common import core, json_body, json_response, validate
from parley.api.docs import body
from parley.api.openai_schemas import Message as ChatMessage
from parley.api.openai_schemas import NamedToolChoice, Tool
from parley.api.v8 import events
from parley.api.v8.auth import V8Caller, user
from parley.chat.attachments import Attachment, prepare
from parley.chat.completions import complete
from parley.chat.turn import TurnRequest, run
from parley.core import CoreDep
from parley.errors import BadRequest, NotFound
from parley.tokens import content_text

router = APIRouter(prefix="/chat/conversations/{conversation_id}", tags=["v8 messages"])


class SendMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str | None = None
    attachments: list[Attachment] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | NamedToolChoice | None = None
    messages: list[ChatMessage] | None = None
    custom_data: dict[str, Any] | None = None
    stream: bool | None = None


def _sampling(settings: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"temperature": settings["temperature"], "max_tokens": settings["max_tokens"]}
    if settings.get("top_p"):  # 0, the default, leaves the provider's own default
        out["top_p"] = settings["top_p"]
    for name in ("frequency_penalty", "presence_penalty"):
        if settings.get(name):
            out[name] = settings[name]
    return out


@router.post(
    "/messages", summary="Send a message and get the reply (streamed by default)", openapi_extra=body(SendMessage)
)
async def send_message(
    conversation_id: str, request: Request, core: CoreDep, caller: V8Caller = Depends(user)
) -> Response:
    raw = await json_body(request)
    req = validate(SendMessage, raw)
    async with core.sessions() as db:
        conversation = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
    settings = conversation.settings
    core.router.chat(settings["model"])  # an unknown model is refused before attachments are fetched
    extra = [m.model_dump(exclude_none=True) for m in req.messages or []]
    if not (req.content or req.attachments or extra):
        raise BadRequest("Send 'content', 'attachments' or 'messages'.", param="content")
    attachments = await prepare(req.attachments) if req.attachments else None
    params = _sampling(settings)
    if req.tools:
        params["tools"] = [t.model_dump(exclude_none=True) for t in req.tools]
        if req.tool_choice is not None:
            params["tool_choice"] = raw["tool_choice"]
    turn = TurnRequest(
        caller=caller.caller,
        model=settings["model"],
        messages=[],
        params=params,
        stream=req.stream if req.stream is not None else settings.get("stream", True),
        system=[{"role": "system", "content": settings["prompt"]}] if settings.get("prompt") else [],
        transcript=store.ConversationTranscript(
            core.sessions,
            caller.app_id,
            caller.user_id,
            conversation_id,
            settings["history_messages_count"],
            extra,
            req.content,
            attachments,
            req.custom_data,
        ),
        memories=conversation.reference_settings.get("memories") or {},
        memory_scope=caller.app_id,  # another tenant's memory is invisible, as if it did not exist
        query=req.content,
    )
    return await run(core, turn, events.V8Encoder(core.router.chat(settings["model"]).public_name))


@router.get("/messages", summary="All messages of the conversation, oldest first")
async def list_messages(conversation_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        conversation = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
        rows = await store.messages(db, conversation.id)
    return json_response([store.message_dict(m) for m in rows])


@router.delete("/messages", summary="Delete all messages of the conversation")
async def delete_messages(conversation_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        conversation = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
        count = await store.delete_messages(db, conversation.id)
    return json_response({"message": "消息删除成功", "deleted": count})


@router.delete("/messages/{message_id}", summary="Delete one message")
async def delete_message(
    conversation_id: str, message_id: str, request: Request, caller: V8Caller = Depends(user)
) -> Response:
    async with core(request).sessions() as db:
        conversation = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
        if not await store.delete_messages(db, conversation.id, message_id):
            raise NotFound("Message not found")
    return json_response({"message": "消息删除成功"})


TITLE_PROMPT = (
    "Write a short title (at most 8 words) for the conversation below, in the language it is written in. "
    "Reply with the title only: no quotes, no trailing punctuation."
)


@router.post("/generate-title", summary="Ask the conversation's model for a short title, store and return it")
async def generate_title(conversation_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    c = core(request)
    async with c.sessions() as db:
        conversation = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
        rows = await store.history(db, conversation.id, 10)
    lines = [f"{m.role}: {m.content}" for m in rows if m.content and m.role in ("user", "assistant")]
    if not lines:
        raise BadRequest("The conversation has no messages to make a title from.")
    route = c.router.chat(conversation.settings["model"])
    async with c.accounting.call(caller.caller, route) as ticket:  # limits, usage, metrics
        result, used = await complete(
            c.router,
            conversation.settings["model"],
            {
                "messages": [
                    {"role": "system", "content": TITLE_PROMPT},
                    {"role": "user", "content": "\n".join(lines)[:8000]},
                ],
                "max_tokens": 32,
                "temperature": 0.3,
            },
        )
        ticket.answered_by(used)
        ticket.usage = result["usage"]
    title = (
        content_text((result["choices"][0].get("message") or {}).get("content")).strip().strip("\"'“”「」《》").strip()
    )
    title = title.splitlines()[0][:200] if title else "New conversation"
    async with c.sessions() as db:
        row = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
        row.title = title
        await db.commit()
    return json_response({"title": title})
