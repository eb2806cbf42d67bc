"""Server-kept session transcripts for the integration API, and taking turns on a session.

A turn holds its session for its whole length, so concurrent requests on one session run one
after the other and each sees the transcript the previous one left. Within a process an
asyncio lock per session does it; across worker processes a lease on the session row does
(an atomic UPDATE that only succeeds when no unexpired lease is held).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.chat.locks import holding
from parley.errors import BadRequest, NotFound
from parley.storage.models import ChatSession, SessionMessage, now

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


def turn(sessions: async_sessionmaker[AsyncSession], project_id: str, session_id: str) -> Any:
    """Hold the session for one turn (the session row must exist)."""
    where = (ChatSession.project_id == project_id, ChatSession.id == session_id)
    return holding(sessions, ChatSession, where, ("session", project_id, session_id))
