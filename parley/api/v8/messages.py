"""/v8/chat/conversations/{id}/messages and generate-title."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from parley import conversations as store
from parley.api.common import core, json_body, json_response, validate
from parley.api.docs import body
from parley.api.openai_schemas import Message as ChatMessage
from parley.api.openai_schemas import NamedToolChoice, Tool
from parley.api.sse import DONE_LINE, PING_LINE, event, sse_response
from parley.api.v8 import events
from parley.api.v8.auth import Caller, user
from parley.chat.attachments import Attachment, prepare, user_content
from parley.chat.completions import ChatStream, complete, open_stream
from parley.chat.locks import holding
from parley.chat.relay import PING
from parley.errors import BadRequest, NotFound, ParleyError
from parley.memory import retrieval
from parley.storage.models import Conversation, Message
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
    if settings.get("top_p"):  # 0, the seed's default, leaves the provider's own default
        out["top_p"] = settings["top_p"]
    for name in ("frequency_penalty", "presence_penalty"):
        if settings.get(name):
            out[name] = settings[name]
    return out


def _reply_row(
    message: dict[str, Any], model: str, finish: str | None, usage: dict[str, Any], refs: list[Any] | None = None
) -> Message:
    return Message(
        role="assistant",
        content=message.get("content"),
        reasoning=message.get("reasoning_content"),
        tool_calls=message.get("tool_calls"),
        model=model,
        finish_reason=finish,
        usage=usage,
        references=refs or None,
    )


def _reply_body(row: Message) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "content": row.content,
        "reasoning": row.reasoning,
        "model": row.model,
        "finish_reason": row.finish_reason,
    }
    if row.tool_calls:
        body["tool_calls"] = row.tool_calls
    body["usage"] = row.usage
    if row.references:
        body["references"] = row.references
    return body


@router.post(
    "/messages", summary="Send a message and get the reply (streamed by default)", openapi_extra=body(SendMessage)
)
async def send_message(conversation_id: str, request: Request, caller: Caller = Depends(user)) -> Response:
    raw = await json_body(request)
    req = validate(SendMessage, raw)
    c = core(request)
    async with c.sessions() as db:
        conversation = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
    settings = conversation.settings
    route = c.router.chat(settings["model"])
    extra = [m.model_dump(exclude_none=True) for m in req.messages or []]
    if not (req.content or req.attachments or extra):
        raise BadRequest("Send 'content', 'attachments' or 'messages'.", param="content")
    attachments = await prepare(req.attachments) if req.attachments else None
    stream = req.stream if req.stream is not None else settings.get("stream", True)

    hold = AsyncExitStack()  # this conversation's turn, until the reply is stored or given up
    where = (Conversation.id == conversation_id,)
    await hold.enter_async_context(holding(c.sessions, Conversation, where, ("conversation", conversation_id)))
    try:
        async with c.sessions() as db:
            conversation = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
            window = [
                store.to_openai(m) for m in await store.history(db, conversation.id, settings["history_messages_count"])
            ]
            incoming = [
                Message(role="tool", content=content_text(m.get("content")), tool_call_id=m["tool_call_id"])
                for m in extra
                if m["role"] == "tool"
            ]
            turn: list[dict[str, Any]] = list(extra)
            if req.content or attachments:
                incoming.append(
                    Message(role="user", content=req.content, attachments=attachments, custom_data=req.custom_data)
                )
                turn.append({"role": "user", "content": user_content(req.content, attachments)})
            await store.append(db, conversation, incoming)  # kept even if the model then fails
        system = [{"role": "system", "content": settings["prompt"]}] if settings.get("prompt") else []
        hits = await _retrieve(c, caller, conversation, req.content)
        if hits is not None and not hits:
            unmatched = conversation.reference_settings["memories"].get("unmatch_message")
            if unmatched:  # nothing relevant: the configured answer, and no model is called
                return await _reply_without_model(c, conversation, unmatched, settings["model"], stream, hold)
        refs = retrieval.references(hits or [])
        if hits:
            system.append(retrieval.sources_message(hits))
        body: dict[str, Any] = {"messages": system + window + turn, **_sampling(settings)}
        if req.tools:
            body["tools"] = [t.model_dump(exclude_none=True) for t in req.tools]
            if req.tool_choice is not None:
                body["tool_choice"] = raw["tool_choice"]
        if not stream:
            result = await complete(route, body)
            choice = result["choices"][0]
            row = _reply_row(
                choice.get("message") or {}, route.public_name, choice.get("finish_reason"), result["usage"], refs
            )
            await _store_reply(c, conversation, row)
            await hold.aclose()
            return json_response(_reply_body(row))
        chat = await open_stream(route, body, c.settings.sse_ping_interval)
    except BaseException:
        await hold.aclose()
        raise
    return sse_response(_stream(c, conversation, chat, refs), on_close=hold.aclose)


async def _retrieve(c: Any, caller: Caller, conversation: Conversation, query: str | None) -> list[Any] | None:
    """Sources for this turn, or None when the conversation names no memories (or there is no text)."""
    memories = conversation.reference_settings.get("memories") or {}
    if not memories.get("collections") or not query:
        return None
    async with c.sessions() as db:
        return await retrieval.retrieve(db, c.searcher, memories, query, caller.app_id)


async def _reply_without_model(
    c: Any, conversation: Conversation, text: str, model: str, stream: bool, hold: AsyncExitStack
) -> Response:
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    row = _reply_row({"content": text}, model, "stop", usage)
    try:
        await _store_reply(c, conversation, row)
    finally:
        await hold.aclose()
    if not stream:
        return json_response(_reply_body(row))
    final = {"type": events.MESSAGE, "model": model, "content": text, "finish_reason": "stop", "usage": usage}

    async def body() -> AsyncIterator[bytes]:
        yield event(final)
        yield DONE_LINE

    return sse_response(body())


async def _store_reply(c: Any, conversation: Conversation, row: Message) -> None:
    async with c.sessions() as db:
        conversation = await db.merge(conversation)
        await store.append(db, conversation, [row])


async def _stream(
    c: Any, conversation: Conversation, chat: ChatStream, refs: list[dict[str, Any]]
) -> AsyncIterator[bytes]:
    model = chat.route.public_name
    finishing: dict[str, Any] | None = None
    try:
        if refs:
            yield event(events.references(refs))
        async for item in chat:
            if item is PING:
                yield PING_LINE
                continue
            ev = events.from_chunk(item, chat.builder, model)
            if ev is None:
                finishing = item
            else:
                yield event(ev)
        last = events.final(finishing, chat.builder, model, chat.usage)
        message = chat.message
        await _store_reply(c, conversation, _reply_row(message, model, last["finish_reason"], chat.usage, refs))
        yield event(last)
        yield DONE_LINE
    except ParleyError as exc:
        yield event(events.error(exc.message))


@router.get("/messages", summary="All messages of the conversation, oldest first")
async def list_messages(conversation_id: str, request: Request, caller: Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        conversation = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
        rows = await store.messages(db, conversation.id)
    return json_response([store.message_dict(m) for m in rows])


@router.delete("/messages", summary="Delete all messages of the conversation")
async def delete_messages(conversation_id: str, request: Request, caller: Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        conversation = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
        count = await store.delete_messages(db, conversation.id)
    return json_response({"message": "消息删除成功", "deleted": count})


@router.delete("/messages/{message_id}", summary="Delete one message")
async def delete_message(
    conversation_id: str, message_id: str, request: Request, caller: Caller = Depends(user)
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
async def generate_title(conversation_id: str, request: Request, caller: Caller = Depends(user)) -> Response:
    c = core(request)
    async with c.sessions() as db:
        conversation = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
        rows = await store.history(db, conversation.id, 10)
    lines = [f"{m.role}: {m.content}" for m in rows if m.content and m.role in ("user", "assistant")]
    if not lines:
        raise BadRequest("The conversation has no messages to make a title from.")
    route = c.router.chat(conversation.settings["model"])
    result = await complete(
        route,
        {
            "messages": [
                {"role": "system", "content": TITLE_PROMPT},
                {"role": "user", "content": "\n".join(lines)[:8000]},
            ],
            "max_tokens": 32,
            "temperature": 0.3,
        },
    )
    title = (
        content_text((result["choices"][0].get("message") or {}).get("content")).strip().strip("\"'“”「」《》").strip()
    )
    title = title.splitlines()[0][:200] if title else "New conversation"
    async with c.sessions() as db:
        row = await store.owned(db, caller.app_id, caller.user_id, conversation_id)
        row.title = title
        await db.commit()
    return json_response({"title": title})
