"""One chat turn, for every dialect.

A dialect authenticates a ``Caller``, validates its own request into a ``TurnRequest`` and
hands it here with its ``Encoder``; the turn does the rest, in one place:

0. admit the caller against its limits and budgets (a 429 before anything happens);
1. take the transcript's turn (a lock in the process, a lease across processes), read its
   history and store the caller's new messages (they are kept even if the model then fails);
2. retrieve sources from the named memories; with none above the threshold and an unmatch
   message configured, that message is the reply and no model is called;
3. call the upstream, whole or streamed (timeouts, keep-alive pings, cancellation: relay.py);
4. store the reply when it finishes, or what was generated so far when the client leaves
   (marked as cut off);
5. let the encoder put the reply, its chunks or an error in the dialect's own shapes;
6. account for it, however it ended: usage row, tokens and spend against the limits, metrics.

``/v1`` has no transcript; project sessions and v8 conversations are the two transcripts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Hashable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from starlette.responses import Response

from parley import tokens
from parley.accounting import CLIENT_LEFT, Ticket
from parley.api.jsonresp import json_response
from parley.api.sse import PING_LINE, sse_response
from parley.caller import Caller
from parley.chat.assemble import MessageBuilder
from parley.chat.completions import ChatStream, batches, canned_chunks, complete, open_stream
from parley.chat.relay import PING
from parley.core import Core
from parley.errors import BadRequest, ParleyError
from parley.providers.route import Route
from parley.tokens import content_text

if TYPE_CHECKING:
    from parley.memory.search import Hit

Body = dict[str, Any]

log = logging.getLogger("parley.turn")


@dataclass
class Reply:
    """A finished (or cut off) assistant turn, as every encoder and transcript needs it."""

    id: str
    created: int
    model: str  # the name the client sees
    message: Body  # OpenAI's assistant message: content, tool_calls, reasoning_content
    finish_reason: str | None
    usage: Body
    references: list[Body]
    completion: Body  # the whole ``chat.completion`` (upstream fields kept, for /v1)
    cut_off: bool = False  # the client left before the end: ``message`` is what came so far
    stored_id: str | None = None  # the stored message's id, once a transcript has it
    route: Route | None = None  # the deployment that answered (None: no model was called)


class Transcript(Protocol):
    """Where a conversation's messages live (project sessions, v8 conversations)."""

    key: Hashable

    def hold(self) -> AbstractAsyncContextManager[None]:
        """This transcript's turn: one at a time, across worker processes too."""

    async def begin(self) -> tuple[list[Body], list[Body]]:
        """Under the hold: (history for the model, the new messages); the new ones are stored."""

    async def finish(self, reply: Reply) -> None:
        """Store the reply (whole, or cut off)."""

    async def fail(self, exc: ParleyError) -> None:
        """A stream the upstream broke off, before the client sees the error event."""


class Encoder(Protocol):
    """One dialect's shapes for a reply, its stream and its errors."""

    headers: dict[str, str]

    def reply(self, reply: Reply) -> Body: ...

    def opening(self, references: list[Body]) -> list[bytes]: ...

    def chunk(self, chunk: Body, builder: MessageBuilder) -> bytes | None: ...

    def closing(self, reply: Reply) -> list[bytes]: ...

    def error(self, exc: ParleyError) -> bytes: ...


@dataclass
class TurnRequest:
    caller: Caller
    model: str | None  # the public model name; None: the default
    messages: list[Body]  # without a transcript, the whole conversation; else ignored
    params: Body = field(default_factory=dict)  # the rest of the OpenAI request (sampling, tools…)
    stream: bool = False
    label: str | None = None  # the model name replies show, when not the public name
    system: list[Body] = field(default_factory=list)  # system messages put first
    transcript: Transcript | None = None
    memories: Body | None = None  # retrieval settings (collections, min_similarity, …)
    memory_scope: str | None = None  # only this integration's memories; None: any named
    query: str | None = None  # what retrieval searches for; None: the newest user text


def _newest_user_text(messages: list[Body]) -> str | None:
    for m in reversed(messages):
        if m.get("role") == "user":
            return content_text(m.get("content"), " ") or None
    return None


async def _retrieve(core: Core, req: TurnRequest, fresh: list[Body]) -> list[Hit] | None:
    """Sources for this turn, or None when no memories are named (or there is nothing to search)."""
    settings = req.memories or {}
    query = req.query if req.query is not None else _newest_user_text(fresh)
    if not settings.get("collections") or not query:
        return None
    searcher = await core.searcher.get()
    from parley.memory import retrieval  # imported by get(), off the event loop

    await tokens.ready()  # the packaged embedding model counts the query's tokens

    async with core.sessions() as db:
        return await retrieval.retrieve(db, searcher, settings, query, req.memory_scope)


def _reply_from_completion(completion: Body, label: str, refs: list[Body]) -> Reply:
    choice = (completion.get("choices") or [{}])[0]
    return Reply(
        id=completion["id"],
        created=completion["created"],
        model=label,
        message=choice.get("message") or {"role": "assistant", "content": None},
        finish_reason=choice.get("finish_reason"),
        usage=completion["usage"],
        references=refs,
        completion={**completion, "model": label},
    )


def _reply_from_stream(chat: ChatStream, label: str, refs: list[Body], cut_off: bool = False) -> Reply:
    message = chat.message
    finish = chat.builder.finish_reason or ("stop" if not cut_off else None)
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    usage = chat.usage
    completion = {
        "id": chat.id,
        "object": "chat.completion",
        "created": chat.created,
        "model": label,
        "choices": [choice],
        "usage": usage,
    }
    return Reply(
        chat.id,
        chat.created,
        label,
        message,
        finish,
        usage,
        refs,
        completion,
        cut_off,
        route=chat.route if chat.upstream else None,
    )


async def run(core: Core, req: TurnRequest, encoder: Encoder) -> Response:
    """The whole turn; returns the dialect's JSON response or its event stream."""
    route = core.router.chat(req.model)  # an unknown model is refused before anything is stored
    label = req.label or route.public_name
    # Over a limit or budget: a 429 here, before anything is stored or any upstream is called.
    ticket = await core.accounting.admit_chat(req.caller, route, req.stream)
    hold = AsyncExitStack()  # the transcript's turn, until the reply is stored or given up
    calling = False  # while the model is being called: a failure then is the upstream's
    try:
        if req.transcript is not None:
            await hold.enter_async_context(req.transcript.hold())
            history, fresh = await req.transcript.begin()
        else:
            history = fresh = req.messages
        if not history:  # (a final assistant message is a prefill some upstreams continue)
            raise BadRequest("The messages add nothing for the assistant to answer.", param="messages")
        hits = await _retrieve(core, req, fresh)
        refs: list[Body] = []
        system = list(req.system)
        if hits:
            from parley.memory import retrieval  # imported by _retrieve

            refs = retrieval.references(hits)
            system.append(retrieval.sources_message(hits))
        body: Body = {**req.params, "messages": system + history}
        unmatched = (req.memories or {}).get("unmatch_message")
        if hits == [] and unmatched:  # nothing relevant: the configured answer, no model called
            ticket.no_model()
            chat = ChatStream(route, body, batches(canned_chunks(unmatched)), None, label)
            chat.upstream = False
            if not req.stream:
                async for batch in chat:
                    for chunk in batch:
                        chat.builder.add(chunk)
                return await _whole(req, encoder, _reply_from_stream(chat, label, refs), hold, ticket)
        elif not req.stream:
            calling = True
            completion, used = await complete(core.router, req.model, body)
            calling = False
            reply = _reply_from_completion(completion, label, refs)
            reply.route = used
            ticket.answered_by(used)
            return await _whole(req, encoder, reply, hold, ticket)
        else:
            calling = True
            chat = await open_stream(core.router, req.model, body, core.settings.sse_ping_interval, label)
            ticket.answered_by(chat.route)
    except BaseException as exc:
        ticket.fail(exc, upstream=calling)
        await hold.aclose()
        raise
    ticket.stream_opened()

    async def closed() -> None:
        try:
            await hold.aclose()
        finally:  # the client left before the stream even started: its prompt was still sent
            if not ticket.done:  # (``chat.usage`` counts tokens locally when the upstream sent none)
                with anyio.CancelScope(shield=True):
                    await chat.counter_ready()  # the tokenizer loads off the event loop
                ticket.finish(200, chat.usage, CLIENT_LEFT)

    return sse_response(_events(req, encoder, chat, label, refs, ticket), headers=encoder.headers, on_close=closed)


async def _whole(req: TurnRequest, encoder: Encoder, reply: Reply, hold: AsyncExitStack, ticket: Ticket) -> Response:
    try:
        if req.transcript is not None:
            await req.transcript.finish(reply)
    except BaseException as exc:
        ticket.fail(exc, upstream=False, usage=reply.usage, answered=True)
        raise
    finally:
        await hold.aclose()
    ticket.finish(200, reply.usage)
    return json_response(encoder.reply(reply), headers=encoder.headers)


async def _events(
    req: TurnRequest, encoder: Encoder, chat: ChatStream, label: str, refs: list[Body], ticket: Ticket
) -> AsyncIterator[bytes]:
    ended = False  # finished, or failed: either way nothing is left to store
    try:
        for line in encoder.opening(refs):
            yield line
        async for item in chat:
            if item is PING:
                yield getattr(encoder, "ping", PING_LINE)
                continue
            ticket.first_token()
            # The chunks that arrived together go to the client in one write.
            encoded: list[bytes] = []
            for chunk in item:
                chat.builder.add(chunk)
                if (data := encoder.chunk(chunk, chat.builder)) is not None:
                    encoded.append(data)
            if encoded:
                yield encoded[0] if len(encoded) == 1 else b"".join(encoded)
        reply = _reply_from_stream(chat, label, refs)
        ended = True
        if req.transcript is not None:  # stored before the end: a client that saw it finds it
            await req.transcript.finish(reply)
        ticket.finish(200, reply.usage)
        for line in encoder.closing(reply):
            yield line
    except ParleyError as exc:
        # The status line (200) is long gone: the error travels as an event, and the usage row
        # keeps the code. What the model wrote before failing is counted.
        await chat.counter_ready()
        ticket.finish(200, chat.usage, exc.code or exc.type, upstream_failed=not ended)
        if req.transcript is not None and not ended:
            await _record_failure(req.transcript, exc)
        ended = True
        yield encoder.error(exc)
    except Exception:
        with anyio.CancelScope(shield=True):
            await chat.counter_ready()
        ticket.finish(200, chat.usage, "server_error")
        raise
    finally:
        if not ended:
            # The client left mid-stream: keep what was generated so far, marked as cut off.
            # Shielded, because the request's own cancellation would cancel the write too.
            with anyio.CancelScope(shield=True):
                await chat.counter_ready()
                reply = _reply_from_stream(chat, label, refs, cut_off=True)
                ticket.finish(200, reply.usage, CLIENT_LEFT)
                if req.transcript is not None and (reply.message.get("content") or reply.message.get("tool_calls")):
                    await req.transcript.finish(reply)


async def _record_failure(transcript: Transcript, exc: ParleyError) -> None:
    # The client still gets its error event when the failure cannot be stored.
    try:
        await transcript.fail(exc)
    except Exception:
        log.warning("the failed reply could not be stored", exc_info=True)
