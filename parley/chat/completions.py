"""One chat completion against a routed provider, whole or streamed.

What goes in is an OpenAI request body (validated by the dialect); what comes out is OpenAI's
``chat.completion`` or a ``ChatStream`` of ``chat.completion.chunk`` objects, named with the
public model name and always with real usage: the upstream's when it sends any, otherwise
counted here with tiktoken.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from parley import tokens
from parley.chat.assemble import MessageBuilder
from parley.chat.relay import PING, relay
from parley.providers.base import Body
from parley.providers.routing import Route


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


async def complete(route: Route, body: Body) -> Body:
    result = await route.provider.complete({**body, "model": route.upstream_model, "stream": False})
    result["model"] = route.public_name
    result["object"] = "chat.completion"
    result.setdefault("id", new_completion_id())
    result.setdefault("created", int(time.time()))
    if not _valid_usage(result.get("usage")):
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
    """Iterate for chunks (and ``PING`` during silences); afterwards read ``usage`` and ``message``."""

    def __init__(
        self,
        route: Route,
        body: Body,
        chunks: AsyncIterator[Body],
        ping_interval: float | None,
        label: str | None = None,
    ) -> None:
        self.route = route
        self.label = label or route.public_name  # the model name the client sees
        self.body = body
        self.builder = MessageBuilder()
        self.id = new_completion_id()
        self.created = int(time.time())
        self._upstream_usage: dict[str, Any] | None = None
        self._chunks = relay(chunks, route.timeouts, ping_interval)
        self._first = True

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for chunk in self._chunks:
            if chunk is PING:
                yield PING
                continue
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
            self.builder.add(chunk)
            yield chunk

    @property
    def message(self) -> dict[str, Any]:
        return self.builder.message()

    @property
    def usage(self) -> dict[str, Any]:
        if self._upstream_usage is not None:
            return self._upstream_usage
        return local_usage(self.body.get("messages") or [], self.message)


async def open_stream(
    route: Route, body: Body, ping_interval: float | None = None, label: str | None = None
) -> ChatStream:
    """Start a stream; an upstream that refuses raises here, before the client sees a byte."""
    upstream_body = {**body, "model": route.upstream_model, "stream": True}
    chunks = await route.provider.stream(upstream_body)
    return ChatStream(route, body, chunks, ping_interval, label)
