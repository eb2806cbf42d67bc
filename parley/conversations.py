"""v8 conversations and their messages: settings with their documented defaults, storage,
history, and a conversation as the chat turn's transcript."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.chat.attachments import user_content
from parley.chat.locks import holding
from parley.errors import NotFound, ParleyError, from_validation
from parley.memory.filters import content_conditions
from parley.storage.models import Conversation, Message, iso, now
from parley.storage.text import storable
from parley.tokens import content_text

if TYPE_CHECKING:
    from parley.chat.turn import Reply

Strict = ConfigDict(extra="forbid", strict=True)


class Settings(BaseModel):
    """A conversation's ``settings``, with their defaults. ``top_p`` 0 means "the provider's default"."""

    model_config = Strict
    model: str | None = None  # None until created: then the integration's or the server's default
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.7
    max_tokens: Annotated[int, Field(ge=1)] = 4096
    top_p: Annotated[float, Field(ge=0, le=1)] = 0
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] = 0
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] = 0
    prompt: str | None = None
    history_messages_count: Annotated[int, Field(ge=0, le=1000)] = 10
    stream: bool | None = None  # the conversation's default for sending; unset means stream


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


ModelCheck = Callable[[str | None], object]  # raises for a model the server does not route


def _checked_filter(db: AsyncSession, references: dict[str, Any]) -> dict[str, Any]:
    """A memory filter is refused when set (400), not at every turn that would use it."""
    content_conditions(references["memories"].get("content_filter"), db.get_bind().dialect.name)
    return references


async def create(
    db: AsyncSession,
    integration_id: str,
    user_id: str,
    req: ConversationCreate,
    default_model: str | None,
    check_model: ModelCheck,
) -> Conversation:
    settings = merged_settings(None, req.settings)
    settings["model"] = settings["model"] or default_model
    check_model(settings["model"])  # an unknown model is refused when set, not when used
    row = Conversation(
        integration_id=integration_id,
        external_user_id=user_id,
        title=req.title,
        settings=settings,
        reference_settings=_checked_filter(db, merged_references(None, req.reference_settings)),
        custom_data=req.custom_data,
    )
    db.add(row)
    await db.commit()
    return row


async def update(
    db: AsyncSession,
    integration_id: str,
    user_id: str,
    conversation_id: str,
    req: ConversationCreate,
    check_model: ModelCheck,
) -> Conversation:
    """Apply the fields the request set; settings and reference settings merge over the old."""
    row = await owned(db, integration_id, user_id, conversation_id)
    fields = req.model_fields_set
    if "title" in fields:
        row.title = req.title
    if "custom_data" in fields:
        row.custom_data = req.custom_data
    if req.settings is not None:
        row.settings = merged_settings(row.settings, req.settings)
        check_model(row.settings["model"])
    if req.reference_settings is not None:
        row.reference_settings = _checked_filter(db, merged_references(row.reference_settings, req.reference_settings))
    row.updated_at = now()
    await db.commit()
    return row


async def soft_delete(db: AsyncSession, integration_id: str, user_id: str, conversation_id: str) -> None:
    row = await owned(db, integration_id, user_id, conversation_id)
    row.status = "deleted"
    row.deleted_at = now()
    await db.commit()


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
    result = cast(CursorResult[Any], await db.execute(query))
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


CUT_OFF = "cut_off"  # the finish_reason of a reply whose client left mid-stream


@dataclass
class ConversationTranscript:
    """A v8 conversation as the chat turn's transcript.

    The model sees the last ``window`` stored messages, then this turn: extra ``messages``
    the client sent (tool results among them) and the user's message with its attachments.
    """

    sessions: async_sessionmaker[AsyncSession]
    integration_id: str
    user_id: str
    conversation_id: str
    window: int
    extra: list[dict[str, Any]]
    content: str | None
    attachments: list[dict[str, Any]] | None
    custom_data: dict[str, Any] | None
    key: Hashable = field(init=False)
    _conversation: Conversation | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.key = ("conversation", self.conversation_id)

    def hold(self) -> AbstractAsyncContextManager[None]:
        return holding(self.sessions, Conversation, (Conversation.id == self.conversation_id,), self.key)

    async def begin(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with self.sessions() as db:
            # Read again under the hold: it may have been deleted while this turn waited.
            conversation = await owned(db, self.integration_id, self.user_id, self.conversation_id)
            past = [to_openai(m) for m in await history(db, conversation.id, self.window)]
            incoming = [
                Message(role="tool", content=content_text(m.get("content")), tool_call_id=m["tool_call_id"])
                for m in self.extra
                if m["role"] == "tool"
            ]
            turn = list(self.extra)
            if self.content or self.attachments:
                incoming.append(
                    Message(
                        role="user", content=self.content, attachments=self.attachments, custom_data=self.custom_data
                    )
                )
                turn.append({"role": "user", "content": user_content(self.content, self.attachments)})
            await append(db, conversation, incoming)  # kept even if the model then fails
        self._conversation = conversation
        return past + turn, turn

    async def fail(self, exc: ParleyError) -> None:
        # Nothing more is stored: the user's message stands, so asking again answers it.
        return None

    async def finish(self, reply: Reply) -> None:
        row = Message(
            role="assistant",
            content=storable(reply.message.get("content")),
            reasoning=storable(reply.message.get("reasoning_content")),
            tool_calls=storable(reply.message.get("tool_calls")),
            model=reply.model,
            finish_reason=CUT_OFF if reply.cut_off else reply.finish_reason,
            usage=reply.usage,
            references=reply.references or None,
        )
        async with self.sessions() as db:
            assert self._conversation is not None, "finish() comes after begin()"
            await append(db, await db.merge(self._conversation), [row])
        reply.stored_id = row.id
