"""One chat completion against a model's deployments, whole or streamed.

What goes in is an OpenAI request body (validated by the dialect); what comes out is OpenAI's
``chat.completion`` or a ``ChatStream`` of ``chat.completion.chunk`` objects, named with the
public model name and always with real usage: the upstream's when it sends any, otherwise
counted here with tiktoken.

A failed attempt that another may not hit (connection refused, a timeout, 429, 5xx, Anthropic's
529: ``failures.is_retryable``) is tried again on the next deployment in the request's order —
before the client has seen a byte — up to ``routing.retries`` more times, with a jittered,
doubling backoff; then the model's ``fallbacks`` are tried the same way.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from parley import tokens
from parley.chat.assemble import MessageBuilder
from parley.chat.relay import PING, relay
from parley.errors import ParleyError, UpstreamTimeout
from parley.providers.base import Body
from parley.providers.deployments import Deployments
from parley.providers.failures import is_retryable
from parley.providers.routing import Route, Router

T = TypeVar("T")


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def _valid_usage(usage: Any) -> bool:
    return isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int) and usage["prompt_tokens"] >= 0


def local_usage(messages: list[dict[str, Any]], reply: dict[str, Any]) -> dict[str, int]:
    prompt = tokens.count_messages(messages)
    completion = tokens.count(reply.get("content") or "") + tokens.count(reply.get("reasoning_content") or "")
    for call in reply.get("tool_calls") or ():
        completion += tokens.count(call["function"]["name"]) + tokens.count(call["function"]["arguments"])
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _attempts(router: Router, model: str | None) -> list[tuple[Deployments, Route]]:
    """Every attempt this request may make, in order: each model of the fallback chain gets
    ``1 + retries`` attempts over its deployments (round robin over the request's order)."""
    out: list[tuple[Deployments, Route]] = []
    for group in router.fallback_chain(model):
        order = group.order()
        out += [(group, order[i % len(order)]) for i in range(1 + router.routing.retries)]
    return out


async def _attempt(
    router: Router, model: str | None, once: Callable[[Route, bool], Awaitable[T]]
) -> tuple[T, Route, Deployments]:
    """Run ``once(route, last)`` over the attempts until one succeeds or fails for good."""
    attempts = _attempts(router, model)
    failure: ParleyError | None = None
    silent: set[int] = set()  # deployments that timed out: not waited on twice in one request
    for n, (group, route) in enumerate(attempts):
        if id(route) in silent:
            continue
        if n:
            await asyncio.sleep(router.routing.backoff * 2 ** min(n - 1, 6) * random.uniform(0.5, 1.5))
        group.started(route)
        try:
            # Waiting for a first token before answering only pays when another deployment is
            # left to try; one that timed out is not tried again, so the same one cannot be.
            last = all(other is route for _, other in attempts[n + 1 :])
            result = await once(route, last)
        except ParleyError as exc:
            group.ended(route)
            group.failed(route)
            if not is_retryable(exc):
                raise
            if isinstance(exc, UpstreamTimeout):
                silent.add(id(route))
            failure = exc
            continue
        except BaseException:
            group.ended(route)
            raise
        group.succeeded(route)
        return result, route, group
    assert failure is not None
    raise failure


async def complete(router: Router, model: str | None, body: Body) -> tuple[Body, Route]:
    """A whole completion from the first deployment that answers, and that deployment."""
    result, route, group = await _attempt(router, model, lambda route, last: _complete_once(route, body))
    group.ended(route)
    return result, route


async def _complete_once(route: Route, body: Body) -> Body:
    result = await route.provider.complete({**body, "model": route.upstream_model, "stream": False})
    result["model"] = route.public_name
    result["object"] = "chat.completion"
    if "id" not in result:  # (not setdefault: a new id costs a uuid4, and upstreams send theirs)
        result["id"] = new_completion_id()
    if "created" not in result:
        result["created"] = int(time.time())
    if not _valid_usage(result.get("usage")):
        await tokens.ready()
        choices = result.get("choices") or [{}]
        result["usage"] = local_usage(body.get("messages") or [], choices[0].get("message") or {})
    return result


async def canned_chunks(text: str) -> AsyncIterator[Body]:
    """A reply no model wrote (an unmatch message) as the chunks a model would stream."""
    base = {"id": new_completion_id(), "object": "chat.completion.chunk", "created": int(time.time())}
    for delta, finish in (({"role": "assistant", "content": text}, None), ({}, "stop")):
        yield {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    yield {**base, "choices": [], "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


class ChatStream:
    """Iterate for lists of chunks (and ``PING`` during silences), and ``builder.add`` each chunk
    as it is used (an encoder may read the message so far); afterwards read ``usage`` and
    ``message``."""

    def __init__(
        self,
        route: Route,
        body: Body,
        chunks: AsyncIterator[Any],
        ping_interval: float | None,
        label: str | None = None,
    ) -> None:
        """``chunks``: the stream's chunks, or lists of them (``batches``)."""
        self.route = route
        self.label = label or route.public_name  # the model name the client sees
        self.upstream = True  # False for a reply no model wrote (an unmatch message)
        self.body = body
        self.builder = MessageBuilder()
        self.id = new_completion_id()
        self.created = int(time.time())
        self._upstream_usage: dict[str, Any] | None = None
        self._chunks = relay(chunks, route.timeouts, ping_interval)
        self._first = True

    async def __aiter__(self) -> AsyncIterator[Any]:
        """``PING``, or a list of the chunks that arrived together (never empty)."""
        async for batch in self._chunks:
            if batch is PING:
                yield PING
                continue
            out = []
            for chunk in batch:
                if self._first:
                    self._first = False
                    self.id = chunk.get("id") or self.id
                    self.created = chunk.get("created") or self.created
                usage = chunk.pop("usage", None)
                if _valid_usage(usage):
                    self._upstream_usage = usage  # the last one wins: never summed twice
                if not chunk.get("choices"):
                    continue  # a usage-only chunk: the dialect sends its own at the end
                chunk["id"] = self.id
                chunk["model"] = self.label
                chunk.setdefault("object", "chat.completion.chunk")
                chunk.setdefault("created", self.created)
                out.append(chunk)
            if out:
                yield out
        await self.counter_ready()

    async def counter_ready(self) -> None:
        """Load the tokenizer off the event loop if ``usage`` will have to count locally."""
        if self._upstream_usage is None:
            await tokens.ready()

    @property
    def message(self) -> dict[str, Any]:
        return self.builder.message()

    @property
    def usage(self) -> dict[str, Any]:
        if self._upstream_usage is not None:
            return self._upstream_usage
        return local_usage(self.body.get("messages") or [], self.message)


async def open_stream(
    router: Router, model: str | None, body: Body, ping_interval: float | None = None, label: str | None = None
) -> ChatStream:
    """Start a stream on the first deployment that answers. Refusals are raised here, before the
    client sees a byte. When another attempt is left, the first token is awaited here too (up to
    the first-byte timeout), so a deployment that accepts and then stays silent is retried."""

    async def once(route: Route, last: bool) -> AsyncIterator[list[Body]]:
        chunks = batches(await route.provider.stream({**body, "model": route.upstream_model, "stream": True}))
        if last:
            return chunks
        held: list[list[Body]] = []  # what came before the first token (a role-only chunk)
        try:
            async with asyncio.timeout(route.timeouts.first_byte):
                while not held or not any(map(_substantive, held[-1])):
                    held.append(await anext(chunks))
        except StopAsyncIteration:
            pass
        except TimeoutError:
            await _close(chunks)
            raise retryable_timeout(route) from None
        except BaseException:
            await _close(chunks)
            raise
        return _prepend(held, chunks)

    chunks, route, group = await _attempt(router, model, once)
    return ChatStream(route, body, _counted(chunks, group, route), ping_interval, label)


def retryable_timeout(route: Route) -> ParleyError:
    exc = UpstreamTimeout(f"The upstream sent nothing for {route.timeouts.first_byte:g}s (first_byte timeout)")
    exc.retryable = True  # type: ignore[attr-defined]
    return exc


def batches(chunks: AsyncIterator[Body]) -> AsyncIterator[list[Body]]:
    """A provider's chunks as lists of those that arrived together: its own ``batches()`` when
    it has them (providers/http.py), else one chunk to a list."""
    own = getattr(chunks, "batches", None)
    return own() if own is not None else _one_each(chunks)


async def _one_each(chunks: AsyncIterator[Body]) -> AsyncIterator[list[Body]]:
    try:
        async for chunk in chunks:
            yield [chunk]
    finally:
        await _close(chunks)


async def _close(chunks: AsyncIterator[Any]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def _substantive(chunk: Body) -> bool:
    """A chunk with a token, a tool call, a finish or usage in it (not just the role)."""
    if chunk.get("usage"):
        return True
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if choice.get("finish_reason") or delta.get("content") or delta.get("tool_calls"):
            return True
        if delta.get("reasoning_content") or delta.get("reasoning") or delta.get("refusal"):
            return True
    return False


async def _prepend(held: list[list[Body]], rest: AsyncIterator[list[Body]]) -> AsyncIterator[list[Body]]:
    try:
        for chunk in held:
            yield chunk
        async for chunk in rest:
            yield chunk
    finally:
        await _close(rest)


async def _counted(chunks: AsyncIterator[list[Body]], group: Deployments, route: Route) -> AsyncIterator[list[Body]]:
    """The stream, counted as in flight on its deployment until it ends (least-busy routing)."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        group.ended(route)
        await _close(chunks)
