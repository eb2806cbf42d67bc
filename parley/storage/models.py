"""Tables. JSON columns are JSONB on PostgreSQL so filters can index into them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

Json = JSON().with_variant(JSONB(), "postgresql")


class EmbeddingType(TypeDecorator[Any]):
    """A vector: pgvector's ``vector`` on PostgreSQL (any dimension, indexed per dimension),
    little-endian float32 bytes on SQLite. Python side: a list of floats or a numpy array."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Vector())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        import numpy as np  # here, not at module top: numpy costs every worker ~15 MB at start

        return np.asarray(value, dtype="<f4").tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        import numpy as np

        return np.frombuffer(value, dtype="<f4")


TOOL_CALL_ID_MAX = 255  # characters in a stored tool message's tool_call_id


def now() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: Json}


class GatewayKey(Base):
    """A key for the /v1 gateway. Only the sha256 of the key is kept."""

    __tablename__ = "gateway_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Project(Base):
    """One configured assistant behind the integration API."""

    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    allow_model_override: Mapped[bool] = mapped_column(default=False)
    system_prompt: Mapped[str | None] = mapped_column(Text, default=None)
    temperature: Mapped[float | None] = mapped_column(default=None)
    top_p: Mapped[float | None] = mapped_column(default=None)
    max_tokens: Mapped[int | None] = mapped_column(default=None)
    tools: Mapped[list[Any] | None] = mapped_column(Json, default=None)
    # Knowledge bases this project retrieves from: {"collections": [...], "min_similarity", "limit", ...}
    memories: Mapped[dict[str, Any] | None] = mapped_column(Json, default=None)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)


class ProjectKey(Base):
    __tablename__ = "project_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ChatSession(Base):
    """A server-kept conversation of a project. IDs may be chosen by clients: unique per project."""

    __tablename__ = "chat_sessions"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # A lease, so that turns on one session take turns across worker processes too.
    lease_token: Mapped[str | None] = mapped_column(String(40), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)


class SessionMessage(Base):
    __tablename__ = "session_messages"
    __table_args__ = (
        Index("ix_session_messages_turn", "project_id", "session_id", "position", unique=True),
        # Owned rows go with their owner by the database's doing, on both SQLite and PostgreSQL.
        ForeignKeyConstraint(
            ["project_id", "session_id"],
            ["chat_sessions.project_id", "chat_sessions.id"],
            ondelete="CASCADE",
            name="fk_session_messages_session",
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(40))
    session_id: Mapped[str] = mapped_column(String(128))
    position: Mapped[int] = mapped_column(Integer)
    message: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(default=now)


def iso(dt: datetime | None) -> str | None:
    """UTC timestamps as the API writes them: 2024-01-01T00:00:00Z (SQLite returns naive ones)."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


class Integration(Base):
    """The v8 tenant. Its two secrets sign ek- (user) and ak- (admin) tokens with md5, so the
    server must be able to recover them: they are kept encrypted (see auth/sealed.py)."""

    __tablename__ = "integrations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the app_id
    name: Mapped[str] = mapped_column(String(200))
    hash_token_sealed: Mapped[str] = mapped_column(Text)
    admin_token_sealed: Mapped[str] = mapped_column(Text)
    default_model: Mapped[str | None] = mapped_column(String(200), default=None)
    default_embedding_model: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_owner", "integration_id", "external_user_id", "status"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_uuid)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    external_user_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(Text, default=None)
    settings: Mapped[dict[str, Any]] = mapped_column(Json)
    reference_settings: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(20), default="active")
    custom_data: Mapped[dict[str, Any] | None] = mapped_column(Json, default=None)
    # A lease, so that turns on one conversation take turns across worker processes too.
    lease_token: Mapped[str | None] = mapped_column(String(40), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation", "conversation_id", "position", unique=True),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_uuid)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str | None] = mapped_column(Text, default=None)
    reasoning: Mapped[str | None] = mapped_column(Text, default=None)
    tool_calls: Mapped[list[Any] | None] = mapped_column(Json, default=None)
    tool_call_id: Mapped[str | None] = mapped_column(String(TOOL_CALL_ID_MAX), default=None)
    attachments: Mapped[list[Any] | None] = mapped_column(Json, default=None)
    custom_data: Mapped[dict[str, Any] | None] = mapped_column(Json, default=None)
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    finish_reason: Mapped[str | None] = mapped_column(String(40), default=None)
    usage: Mapped[dict[str, Any] | None] = mapped_column(Json, default=None)
    references: Mapped[list[Any] | None] = mapped_column(Json, default=None)
    created_at: Mapped[datetime] = mapped_column(default=now)


class Memory(Base):
    """A knowledge base of an integration."""

    __tablename__ = "memories"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_uuid)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    embedding_model: Mapped[str] = mapped_column(String(200))
    max_tokens_per_chunk: Mapped[int] = mapped_column(Integer, default=1024)
    overlap_tokens: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="enabled")
    # Bumped whenever the set of searchable chunks changes, so in-process indexes know to reload.
    index_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)


class MemoryContent(Base):
    __tablename__ = "memory_contents"
    __table_args__ = (
        Index("ix_memory_contents_key", "memory_id", "key", unique=True),
        Index("ix_memory_contents_status", "memory_id", "status"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_uuid)
    memory_id: Mapped[str] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"), index=True)
    content: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(20), default="text")
    key: Mapped[str | None] = mapped_column(String(512), default=None)
    attrs: Mapped[dict[str, Any] | None] = mapped_column(Json, default=None)
    status: Mapped[str] = mapped_column(String(20), default="enabled")
    version: Mapped[int] = mapped_column(Integer, default=1)  # which chunk set is the newest
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)


class MemoryChunk(Base):
    """A piece of a content, and its place in the embedding queue.

    The table is the durable job queue: ``embedding_status`` pending → processing (under a
    lease) → completed | error. Only ``active`` chunks answer searches; a content's new chunk
    set becomes active, and the old one goes, in one transaction once all of it is embedded.
    """

    __tablename__ = "memory_chunks"
    __table_args__ = (
        Index("ix_memory_chunks_queue", "embedding_status", "not_before"),
        Index("ix_memory_chunks_content", "content_id", "version"),
        Index("ix_memory_chunks_search", "memory_id", "active"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_uuid)
    memory_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("memories.id", ondelete="CASCADE", name="fk_memory_chunks_memory")
    )
    content_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("memory_contents.id", ondelete="CASCADE", name="fk_memory_chunks_content")
    )
    version: Mapped[int] = mapped_column(Integer)
    chunk_index: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    terms: Mapped[str | None] = mapped_column(Text, default=None)  # BM25 terms, space-separated
    embedding: Mapped[Any] = mapped_column(EmbeddingType, default=None, nullable=True)
    dims: Mapped[int | None] = mapped_column(Integer, default=None)
    active: Mapped[bool] = mapped_column(default=False)
    embedding_status: Mapped[str] = mapped_column(String(20), default="pending")
    embedding_error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(default=now)
    lease_token: Mapped[str | None] = mapped_column(String(40), default=None)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=now)


class StoredResponse(Base):
    """A Responses API response kept for ``previous_response_id``, retrieval and input items.

    Each row keeps only its own new input and its output (``ResponseItem``); a continuation
    names its parent, so a chain is read back by walking ``previous_response_id``. A deleted
    response is hidden at once and its rows go when no later response continues from it (the
    foreign key refuses the delete while one does, even one being written at that moment).
    """

    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_previous", "previous_response_id"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), index=True)  # the gateway key that made it
    previous_response_id: Mapped[str | None] = mapped_column(ForeignKey("responses.id"), default=None)
    status: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(200))
    body: Mapped[dict[str, Any]] = mapped_column(Json)  # the response object as it was returned
    created_at: Mapped[datetime] = mapped_column(default=now)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class ResponseItem(Base):
    """One input or output item of a stored response, in order (inputs first)."""

    __tablename__ = "response_items"
    __table_args__ = (
        Index("ix_response_items_order", "response_id", "position", unique=True),
        Index("ix_response_items_item", "item_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    response_id: Mapped[str] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))  # input | output
    item_id: Mapped[str] = mapped_column(String(255))
    item: Mapped[dict[str, Any]] = mapped_column(Json)


class Limit(Base):
    """Rate limits and a spend budget for one gateway key, project or integration.

    ``scope`` is ``key``, ``project`` or ``integration``; ``user`` rows hold an integration's
    defaults for each of its end users (``subject_id`` is the integration). None: no limit.
    """

    __tablename__ = "limits"
    scope: Mapped[str] = mapped_column(String(20), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rpm: Mapped[int | None] = mapped_column(Integer, default=None)
    tpm: Mapped[int | None] = mapped_column(Integer, default=None)
    max_streams: Mapped[int | None] = mapped_column(Integer, default=None)
    budget_usd: Mapped[float | None] = mapped_column(Float, default=None)
    budget_period: Mapped[str | None] = mapped_column(String(10), default=None)  # day | month (UTC)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)


class QuotaCounter(Base):
    """A shared counter of one limit (requests, tokens or USD) for its current window.

    Windows are kept in epoch seconds; a row whose window has passed is reset by the next
    update, in the same atomic statement that grants or adds (see parley/limits/counters.py).
    """

    __tablename__ = "quota_counters"
    key: Mapped[str] = mapped_column(String(600), primary_key=True)
    window_start: Mapped[float] = mapped_column(Float, default=0.0)
    used: Mapped[float] = mapped_column(Float, default=0.0)
    granted: Mapped[float] = mapped_column(Float, default=0.0)  # what the last grant gave


class StreamSlot(Base):
    """One open stream counted against a concurrency limit; a crashed holder's slot expires."""

    __tablename__ = "stream_slots"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(600), index=True)
    expires_at: Mapped[float] = mapped_column(Float)


class UsageRecord(Base):
    """One request of any dialect: who called, what it used, what it cost, how it went."""

    __tablename__ = "usage_records"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=now, index=True)
    request_id: Mapped[str] = mapped_column(String(200))
    caller_kind: Mapped[str] = mapped_column(String(20))
    key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    project_id: Mapped[str | None] = mapped_column(String(40), default=None)
    app_id: Mapped[str | None] = mapped_column(String(40), default=None)
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)
    dialect: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(200))  # the public name
    provider: Mapped[str | None] = mapped_column(String(100), default=None)  # None: no model was called
    deployment: Mapped[str | None] = mapped_column(String(100), default=None)
    upstream_model: Mapped[str | None] = mapped_column(String(200), default=None)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float, default=None)  # streams: until the first chunk
    status: Mapped[int] = mapped_column(Integer)  # the HTTP status the client got
    error_code: Mapped[str | None] = mapped_column(String(100), default=None)
    streamed: Mapped[bool] = mapped_column(default=False)
