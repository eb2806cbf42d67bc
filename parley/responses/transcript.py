"""A Responses API call as the chat turn's transcript.

``begin`` reads the chain ``previous_response_id`` names (every input and output item of it
and its ancestors, function calls and their outputs among them), resolves item references,
and hands the turn the whole context as chat messages; ``finish`` stores the response, with
its input, when ``store`` is on, a cut off or failed one too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.chat.turn import Reply
from parley.errors import BadRequest, NotFound, ParleyError
from parley.responses import store
from parley.responses.items import to_chat
from parley.responses.output import Draft
from parley.storage.models import Memory
from parley.storage.text import storable
from parley.tokens import content_text

Body = dict[str, Any]


@dataclass
class ResponseTranscript:
    sessions: async_sessionmaker[AsyncSession]
    key_id: str
    draft: Draft
    items: list[Body]  # the request's new input items, normalized
    previous_response_id: str | None
    store: bool
    search: Body | None = None  # file_search: the memories the turn retrieves from
    key: Hashable = field(init=False)
    _context: list[Body] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.key = ("response", self.draft.id)

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        # A stored response never changes: a continuation is a new response, so two turns
        # continuing from the same one fork rather than wait for each other.
        yield

    async def begin(self) -> tuple[list[Body], list[Body]]:
        references = any(item["type"] == "item_reference" for item in self.items)
        if self.previous_response_id is not None or references or self.search is not None:
            await self._read()
        fresh = to_chat(self.items, check=False)  # only what this request adds
        history = to_chat(self._context + self.items)
        if not history or history[-1]["role"] == "assistant":
            raise BadRequest("The input adds nothing for the model to answer.", param="input")
        if self.search is not None:
            # The turn searches for the newest user text this request adds (none: no search).
            self.draft.search_query = next(
                (content_text(m["content"], " ") or None for m in reversed(fresh) if m["role"] == "user"), None
            )
        return history, fresh

    async def _read(self) -> None:
        """What this turn needs from the database: the chain, referenced items, memories."""
        async with self.sessions() as db:
            if self.previous_response_id is not None:
                try:
                    await store.owned(db, self.key_id, self.previous_response_id)
                except NotFound:  # a 400, as OpenAI answers it: the request names what is missing
                    raise BadRequest(
                        f"Previous response with id '{self.previous_response_id}' not found.",
                        param="previous_response_id",
                        code="previous_response_not_found",
                    ) from None
                self._context = await store.chain(db, self.previous_response_id)
            self.items = [await self._resolve(db, item) for item in self.items]
            if self.search is not None:
                await _check_memories(db, self.search["collections"])

    async def _resolve(self, db: AsyncSession, item: Body) -> Body:
        if item["type"] != "item_reference":
            return item
        wanted = item["id"]
        for known in reversed(self._context):
            if known.get("id") == wanted:
                return dict(known)
        found = await store.find_item(db, self.key_id, wanted)
        if found is None:
            raise BadRequest(f"Item with id '{wanted}' not found.", param="input")
        return dict(found)

    async def finish(self, reply: Reply) -> None:
        await self._save(self.draft.finish(reply))

    async def fail(self, exc: ParleyError) -> None:
        # Kept like any response, with status "failed", its error and what came before it, so
        # ``GET /v1/responses/{id}`` finds the id the client saw in ``response.created``.
        await self._save(self.draft.failed(exc))

    async def _save(self, body: Body) -> None:
        """The response with its input, when ``store`` is on (the draft is made either way)."""
        if not self.store:
            return
        async with self.sessions() as db:
            await store.save(db, self.key_id, storable(body), self.previous_response_id, self.items, self._context)


async def _check_memories(db: AsyncSession, memory_ids: list[str]) -> None:
    """file_search's vector stores are Parley memories: each named one must exist and be on."""
    for memory_id in memory_ids:
        memory = await db.get(Memory, memory_id)
        if memory is None or memory.status != "enabled":
            raise BadRequest(f"Vector store with id '{memory_id}' not found.", param="tools")
