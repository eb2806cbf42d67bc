"""v8 conversations and their messages: settings with the seed's defaults, storage, history."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.chat.attachments import user_content
from parley.errors import NotFound, from_validation
from parley.storage.models import Conversation, Message, iso, now

Strict = ConfigDict(extra="forbid", strict=True)


class Settings(BaseModel):
    """``settings`` of seed 003, with its defaults. ``top_p`` 0 means "the provider's default"."""

    model_config = Strict
    model: str | None = None  # None until created: then the integration's or the server's default
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.7
    max_tokens: Annotated[int, Field(ge=1)] = 4096
    top_p: Annotated[float, Field(ge=0, le=1)] = 0
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] = 0
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] = 0
    prompt: str | None = None
    history_messages_count: Annotated[int, Field(ge=0, le=1000)] = 10
    stream: bool | None = None  # the conversation's default for sending; the seed's default is true


class MemorySettings(BaseModel):
    model_config = Strict
    collections: list[str] = Field(default_factory=list)
    content_filter: dict[str, Any] | None = None
    min_similarity: Annotated[float, Field(ge=0, le=1)] = 0.5
    limit: Annotated[int, Field(ge=1, le=100)] = 5
    unmatch_message: str | None = None
    # dense | lexical | hybrid; unset means hybrid, and an unset mode stays out of the stored
    # settings so they keep exactly the documented defaults.
    mode: Literal["dense", "lexical", "hybrid"] | None = None


class ReferenceSettings(BaseModel):
    model_config = Strict
    memories: MemorySettings = Field(default_factory=MemorySettings)


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = None
    settings: dict[str, Any] | None = None
    reference_settings: dict[str, Any] | None = None
    custom_data: dict[str, Any] | None = None


def merged_settings(current: dict[str, Any] | None, patch: dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``patch`` over ``current`` (or the defaults); errors name the field."""
    data = {**(current or {}), **(patch or {})}
    try:
        out = Settings.model_validate(data).model_dump()
    except ValidationError as exc:
        raise from_validation(list(exc.errors()), ("settings",)) from None
    if out.get("stream") is None:
        out.pop("stream", None)
    return out


def merged_references(current: dict[str, Any] | None, patch: dict[str, Any] | None) -> dict[str, Any]:
    memories = {**((current or {}).get("memories") or {}), **((patch or {}).get("memories") or {})}
    extra = {k: v for k, v in (patch or {}).items() if k != "memories"}
    try:
        out = ReferenceSettings.model_validate({"memories": memories, **extra}).model_dump()
    except ValidationError as exc:
        raise from_validation(list(exc.errors()), ("reference_settings",)) from None
    if out["memories"].get("mode") is None:
        out["memories"].pop("mode", None)
    return out


def as_dict(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "integration_id": c.integration_id,
        "external_user_id": c.external_user_id,
        "title": c.title,
        "settings": c.settings,
        "reference_settings": c.reference_settings,
        "status": c.status,
        "custom_data": c.custom_data,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }


async def owned(db: AsyncSession, integration_id: str, user_id: str, conversation_id: str) -> Conversation:
    """The conversation if it belongs to this integration and user and is not deleted; else 404."""
    row = await db.get(Conversation, conversation_id)
    if row is None or row.integration_id != integration_id or row.external_user_id != user_id or row.status != "active":
        raise NotFound("Conversation not found")
    return row


async def list_for(db: AsyncSession, integration_id: str, user_id: str) -> list[Conversation]:
    rows = await db.scalars(
        select(Conversation)
        .where(
            Conversation.integration_id == integration_id,
            Conversation.external_user_id == user_id,
            Conversation.status == "active",
        )
        .order_by(Conversation.updated_at.desc())
    )
    return list(rows.all())


def message_dict(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "role": m.role,
        "content": m.content,
        "reasoning": m.reasoning,
        "tool_calls": m.tool_calls,
        "tool_call_id": m.tool_call_id,
        "attachments": m.attachments,
        "custom_data": m.custom_data,
        "model": m.model,
        "finish_reason": m.finish_reason,
        "usage": m.usage,
        "references": m.references,
        "created_at": iso(m.created_at),
    }


async def messages(db: AsyncSession, conversation_id: str) -> list[Message]:
    rows = await db.scalars(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.position)
    )
    return list(rows.all())


async def history(db: AsyncSession, conversation_id: str, count: int) -> list[Message]:
    """The last ``count`` messages, widened so a tool result never loses the call it answers."""
    if count <= 0:
        return []
    rows = list(
        (
            await db.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.position.desc())
                .limit(count)
            )
        ).all()
    )
    rows.reverse()
    while rows and rows[0].role == "tool":
        earlier = await db.scalar(
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.position < rows[0].position)
            .order_by(Message.position.desc())
            .limit(1)
        )
        if earlier is None:
            rows.pop(0)  # an orphaned result: drop it rather than send an invalid history
            break
        rows.insert(0, earlier)
    return rows


async def append(db: AsyncSession, conversation: Conversation, items: list[Message]) -> None:
    """Store messages after the last one; positions are unique, so a racing writer retries."""
    for attempt in range(5):
        last = await db.scalar(select(func.max(Message.position)).where(Message.conversation_id == conversation.id))
        start = 0 if last is None else last + 1
        for i, item in enumerate(items):
            item.conversation_id = conversation.id
            item.position = start + i
            db.add(item)
        conversation.updated_at = now()
        try:
            await db.commit()
            return
        except IntegrityError:
            await db.rollback()
            if attempt == 4:
                raise


async def delete_messages(db: AsyncSession, conversation_id: str, message_id: str | None = None) -> int:
    query = delete(Message).where(Message.conversation_id == conversation_id)
    if message_id is not None:
        query = query.where(Message.id == message_id)
    result = await db.execute(query)
    await db.commit()
    return result.rowcount or 0


def to_openai(m: Message) -> dict[str, Any]:
    """A stored message as the model sees it again."""
    if m.role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": m.content}
        if m.tool_calls:
            out["tool_calls"] = m.tool_calls
        return out
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content or ""}
    return {"role": m.role, "content": user_content(m.content, m.attachments)}
