"""The built-in offline model: no network, deterministic, streams like a real model.

It exists so a fresh install answers at once and so demos and tests run anywhere. It says what
it is and how to configure a real provider, echoes the user, and exercises tools: given tools
(and ``tool_choice`` other than ``none``) after a user turn, it calls one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from parley import tokens
from parley.providers.base import Body, Provider

NOTICE = (
    "This is Parley's built-in offline model: it does not understand language, it only shows "
    "that the server works. To talk to a real model, add a provider and a model to the config "
    "file (providers: [{name: openai, type: openai, base_url: https://api.openai.com/v1, "
    "api_key: ...}], models: [{name: gpt-4o-mini, provider: openai}]) and restart Parley."
)


def _text(message: dict[str, Any]) -> str:
    return tokens.content_text(message.get("content"), " ")


def _pick_tool(body: Body) -> dict[str, Any] | None:
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    messages = body.get("messages") or []
    if not tools or choice == "none" or not messages or messages[-1].get("role") != "user":
        return None
    chosen: dict[str, Any] = tools[0]
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        chosen = next((t for t in tools if t["function"].get("name") == wanted), chosen)
    return chosen


def _tool_arguments(tool: dict[str, Any], said: str) -> str:
    """Fill each required string parameter with what the user said: deterministic and visible."""
    params = (tool.get("function") or {}).get("parameters") or {}
    props = params.get("properties") or {}
    args = {
        name: said
        for name in params.get("required") or list(props)[:1]
        if (props.get(name) or {}).get("type", "string") == "string"
    }
    return orjson.dumps(args).decode()


def reply_for(body: Body) -> tuple[str, list[dict[str, Any]] | None]:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    tool = _pick_tool(body)
    if tool is not None:
        call_id = "call_" + uuid.uuid5(uuid.NAMESPACE_OID, orjson.dumps(messages).decode()).hex[:24]
        fn = tool["function"]
        return "", [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": fn["name"], "arguments": _tool_arguments(tool, _text(last))},
            }
        ]
    if last.get("role") == "tool":
        return f"The tool returned: {_text(last)}\n\n{NOTICE}", None
    said = _text(last).strip()
    echo = f'You said: "{said}"\n\n' if said else ""
    return echo + NOTICE, None


def _words(text: str) -> list[str]:
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch == " ":
            out.append(text[start : i + 1])
            start = i + 1
    if start < len(text):
        out.append(text[start:])
    return out


class BuiltinProvider(Provider):
    def __init__(self, name: str, chunk_delay: float = 0.02) -> None:
        self.name = name
        self.chunk_delay = chunk_delay

    def _limit(self, body: Body, text: str) -> tuple[str, str]:
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        if cap and tokens.count(text) > cap:
            return tokens.encoding().decode(tokens.encoding().encode(text)[:cap]), "length"
        return text, "stop"

    async def complete(self, body: Body) -> Body:
        # Counts and cuts with the tokenizer below: loaded off the event loop first (the stream
        # path comes through here too).
        await tokens.ready()
        text, calls = reply_for(body)
        text, finish = self._limit(body, text)
        message: Body = {"role": "assistant", "content": text or None, "refusal": None}
        if calls:
            message["tool_calls"] = calls
            finish = "tool_calls"
        completion = tokens.count(text) + sum(tokens.count(c["function"]["arguments"]) for c in calls or [])
        prompt = tokens.count_messages(body.get("messages") or [])
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    async def stream(self, body: Body) -> AsyncIterator[Body]:
        return self._chunks(body)

    async def _chunks(self, body: Body) -> AsyncIterator[Body]:
        whole = await self.complete(body)
        base = {
            "id": whole["id"],
            "object": "chat.completion.chunk",
            "created": whole["created"],
            "model": whole["model"],
        }
        choice = whole["choices"][0]
        message = choice["message"]

        def chunk(delta: Body, finish: str | None = None) -> Body:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        yield chunk({"role": "assistant", "content": ""})
        for word in _words(message["content"] or ""):
            await asyncio.sleep(self.chunk_delay)
            yield chunk({"content": word})
        for i, call in enumerate(message.get("tool_calls") or []):
            head = {
                "index": i,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            yield chunk({"tool_calls": [head]})
            args = call["function"]["arguments"]
            for start in range(0, len(args), 8):
                await asyncio.sleep(self.chunk_delay)
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": args[start : start + 8]}}]})
        yield chunk({}, choice["finish_reason"])
        yield {**base, "choices": [], "usage": whole["usage"]}
