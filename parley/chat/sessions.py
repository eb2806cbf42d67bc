"""Server-kept session transcripts for the integration API, and taking turns on a session.

A turn holds its session for its whole length, so concurrent requests on one session run one
after the other and each sees the transcript the previous one left. Within a process an
asyncio lock per session does it; across worker processes a lease on the session row does
(an atomic UPDATE that only succeeds when no unexpired lease is held).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.chat.locks import holding
from parley.chat.reconcile import new_messages
from parley.errors import BadRequest, NotFound, ParleyError
from parley.storage.models import ChatSession, SessionMessage, now
from parley.storage.text import storable

if TYPE_CHECKING:
    from parley.chat.turn import Reply

# What a stored message keeps; ``cut_off`` marks a reply whose client left mid-stream.
_MODEL_FIELDS = ("role", "content", "name", "tool_calls", "tool_call_id", "thinking_blocks")

SESSION_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


def new_session_id() -> str:
    return "session-" + secrets.token_hex(12)


def check_session_id(value: str) -> str:
    if not SESSION_ID.match(value):
        raise BadRequest(
            "Invalid session ID: use 1 to 128 characters from letters, digits and . _ : -",
            param="session_id",
        )
    return value


async def ensure(db: AsyncSession, project_id: str, session_id: str) -> ChatSession:
    row = await db.get(ChatSession, (project_id, session_id))
    if row is not None:
        return row
    db.add(ChatSession(project_id=project_id, id=session_id))
    try:
        await db.commit()
    except IntegrityError:  # made by a concurrent request a moment ago
        await db.rollback()
    row = await db.get(ChatSession, (project_id, session_id))
    assert row is not None
    return row


async def get(db: AsyncSession, project_id: str, session_id: str) -> ChatSession:
    row = await db.get(ChatSession, (project_id, session_id))
    if row is None:
        raise NotFound(f"Session {session_id!r} not found")
    return row


async def transcript(db: AsyncSession, project_id: str, session_id: str) -> list[dict[str, Any]]:
    rows = await db.scalars(
        select(SessionMessage.message)
        .where(SessionMessage.project_id == project_id, SessionMessage.session_id == session_id)
        .order_by(SessionMessage.position)
    )
    return list(rows.all())


async def append(db: AsyncSession, project_id: str, session_id: str, messages: list[dict[str, Any]]) -> None:
    if not messages:
        return
    last = await db.scalar(
        select(func.max(SessionMessage.position)).where(
            SessionMessage.project_id == project_id, SessionMessage.session_id == session_id
        )
    )
    start = -1 if last is None else last
    db.add_all(
        SessionMessage(project_id=project_id, session_id=session_id, position=start + 1 + i, message=m)
        for i, m in enumerate(messages)
    )
    await db.execute(
        update(ChatSession)
        .where(ChatSession.project_id == project_id, ChatSession.id == session_id)
        .values(updated_at=now())
    )
    await db.commit()


async def remove(db: AsyncSession, project_id: str, session_id: str) -> None:
    await get(db, project_id, session_id)
    # Its messages go with it: the database cascades (see storage/models.py).
    await db.execute(delete(ChatSession).where(ChatSession.project_id == project_id, ChatSession.id == session_id))
    await db.commit()


def stored_form(m: dict[str, Any]) -> dict[str, Any]:
    """A message as the transcript keeps it. ``content`` is always there (None when an
    assistant only called tools: OpenAI lets such messages leave it out)."""
    out = {k: m[k] for k in _MODEL_FIELDS if m.get(k) is not None}
    out.setdefault("content", None)
    return out


def model_form(m: dict[str, Any]) -> dict[str, Any]:
    """A stored message as the model sees it again (Parley's own markers left out)."""
    return {k: m[k] for k in _MODEL_FIELDS if k in m}


@dataclass
class SessionTranscript:
    """A project session as the chat turn's transcript: the request's messages are reconciled
    with what is stored (see reconcile.py), so clients may send the newest message or all."""

    sessions: async_sessionmaker[AsyncSession]
    project_id: str
    session_id: str
    sent: list[dict[str, Any]]  # the request's messages other than system/developer ones
    key: Hashable = field(init=False)

    def __post_init__(self) -> None:
        self.key = ("session", self.project_id, self.session_id)

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self.sessions() as db:
            await ensure(db, self.project_id, self.session_id)
        where = (ChatSession.project_id == self.project_id, ChatSession.id == self.session_id)
        async with holding(self.sessions, ChatSession, where, self.key):
            yield

    async def begin(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with self.sessions() as db:
            stored = await transcript(db, self.project_id, self.session_id)
            fresh = new_messages(stored, self.sent)
            history = stored + fresh
            if not history or history[-1]["role"] == "assistant":
                raise BadRequest("The messages add nothing for the assistant to answer.", param="messages")
            await append(db, self.project_id, self.session_id, fresh)  # kept even if the model then fails
        return [model_form(m) for m in history], fresh

    async def fail(self, exc: ParleyError) -> None:
        # Nothing more is stored: the user's message stands, so asking again answers it.
        return None

    async def finish(self, reply: Reply) -> None:
        message = storable(stored_form(reply.message))
        if reply.cut_off:
            message["cut_off"] = True
        async with self.sessions() as db:
            await append(db, self.project_id, self.session_id, [message])
