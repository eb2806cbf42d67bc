"""Stored responses: saving, reading a chain back, input items, deletion.

A response keeps only its own new input and its output; its context is its ancestors' items
(read with one recursive query up the ``previous_response_id`` links) followed by its input.
Every response belongs to the gateway key that made it: any other key sees a 404.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.errors import BadRequest, NotFound
from parley.storage.models import ResponseItem, StoredResponse, now

Body = dict[str, Any]


def not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id")


async def owned(db: AsyncSession, key_id: str, response_id: str) -> StoredResponse:
    row = await db.get(StoredResponse, response_id)
    if row is None or row.key_id != key_id or row.deleted_at is not None:
        raise not_found(response_id)
    return row


async def chain(db: AsyncSession, response_id: str) -> list[Body]:
    """Every item of ``response_id`` and its ancestors, oldest first (inputs before outputs)."""
    up = (
        select(StoredResponse.id, StoredResponse.previous_response_id, literal(0).label("depth"))
        .where(StoredResponse.id == response_id)
        .cte("chain", recursive=True)
    )
    up = up.union_all(
        select(StoredResponse.id, StoredResponse.previous_response_id, up.c.depth + 1).where(
            StoredResponse.id == up.c.previous_response_id
        )
    )
    rows = await db.scalars(
        select(ResponseItem.item)
        .join(up, ResponseItem.response_id == up.c.id)
        .order_by(up.c.depth.desc(), ResponseItem.position)
    )
    return list(rows.all())


async def find_item(db: AsyncSession, key_id: str, item_id: str) -> Body | None:
    """The newest stored item with this id among the key's responses (for item references)."""
    return await db.scalar(
        select(ResponseItem.item)
        .join(StoredResponse, ResponseItem.response_id == StoredResponse.id)
        .where(ResponseItem.item_id == item_id, StoredResponse.key_id == key_id, StoredResponse.deleted_at.is_(None))
        .order_by(ResponseItem.id.desc())
        .limit(1)
    )


async def save(
    db: AsyncSession,
    key_id: str,
    body: Body,
    previous_id: str | None,
    inputs: list[Body],
    context: list[Body],
) -> None:
    """Store a response with its new ``inputs`` and its output. Should its parent have been
    removed since it was read, the response is kept whole on its own: ``context`` (the items
    read from the chain) goes into its input."""
    try:
        await _insert(db, key_id, body, previous_id, inputs)
    except IntegrityError:
        await db.rollback()
        if previous_id is None:
            raise
        await _insert(db, key_id, body, None, context + inputs)


async def _insert(db: AsyncSession, key_id: str, body: Body, previous_id: str | None, inputs: list[Body]) -> None:
    db.add(
        StoredResponse(
            id=body["id"],
            key_id=key_id,
            previous_response_id=previous_id,
            status=body["status"],
            model=body["model"],
            body=body,
        )
    )
    await db.flush()  # the response row first: its items refer to it
    items = [("input", i) for i in inputs] + [("output", i) for i in body["output"]]
    db.add_all(
        ResponseItem(response_id=body["id"], position=n, kind=kind, item_id=item["id"], item=item)
        for n, (kind, item) in enumerate(items)
    )
    await db.commit()


async def input_items(db: AsyncSession, row: StoredResponse) -> list[Body]:
    """What the model was given for ``row``: its ancestors' items, then its own input."""
    before = await chain(db, row.previous_response_id) if row.previous_response_id else []
    own = await db.scalars(
        select(ResponseItem.item)
        .where(ResponseItem.response_id == row.id, ResponseItem.kind == "input")
        .order_by(ResponseItem.position)
    )
    return before + list(own.all())


def page(items: list[Body], order: str, after: str | None, before: str | None, limit: int) -> Body:
    """One page of a list as OpenAI pages its lists: ``after``/``before`` are item ids."""
    ordered = items if order == "asc" else items[::-1]
    ids = [i["id"] for i in ordered]
    start, end = 0, len(ordered)
    if after is not None:
        if after not in ids:
            raise BadRequest(f"Item with id '{after}' not found in this list.", param="after")
        start = ids.index(after) + 1
    if before is not None:
        if before not in ids:
            raise BadRequest(f"Item with id '{before}' not found in this list.", param="before")
        end = ids.index(before)
    window = ordered[start:end]
    if before is not None and after is None:  # the page just before the cursor
        data, has_more = window[-limit:], len(window) > limit
    else:
        data, has_more = window[:limit], len(window) > limit
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


async def remove(db: AsyncSession, key_id: str, response_id: str) -> None:
    """Hide the response at once; drop its rows, and its hidden ancestors', while no other
    response continues from them."""
    row = await owned(db, key_id, response_id)
    row.deleted_at = now()
    await db.commit()
    current: str | None = response_id
    while current is not None:
        hidden = await db.get(StoredResponse, current)
        if hidden is None or hidden.deleted_at is None:
            return
        if await db.scalar(select(exists().where(StoredResponse.previous_response_id == current))):
            return
        parent = hidden.previous_response_id
        try:
            await db.execute(delete(ResponseItem).where(ResponseItem.response_id == current))
            await db.execute(delete(StoredResponse).where(StoredResponse.id == current))
            await db.commit()
        except IntegrityError:  # a continuation was stored meanwhile: it keeps this one alive
            await db.rollback()
            return
        db.expunge_all()
        current = parent
