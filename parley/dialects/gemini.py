"""Gemini's generateContent API as a dialect: its requests into the core's OpenAI chat form,
and the core's replies, chunks and errors back into Gemini's shapes (docs/protocol.md).

Served at ``/v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (and the
same under ``/v1``) so the official ``google-genai`` SDK works against any configured model.
Gemini's JSON is camelCase, but its SDK passes some nested objects through in snake_case
(``inline_data.mime_type``) and the API accepts both, so every field is read in either form.

Function calls in Gemini have no required ids: a call without one gets a stable id made from
its position and content, and a ``functionResponse`` without one is matched to the earliest
unanswered call of the same name.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from parley.chat.assemble import MessageBuilder
from parley.chat.turn import Reply
from parley.errors import BadRequest, ParleyError
from parley.wire.common import dump_arguments, tool_arguments
from parley.wire.gemini import tool_call_id

Body = dict[str, Any]

FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def get(obj: Any, name: str) -> Any:
    """A field by its camelCase name, or by its snake_case one."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(name)
    return value if value is not None else obj.get(_snake(name))


# ---- requests: Gemini -> the core's OpenAI chat form ----------------------------------------


def openapi_to_json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-style schema (``type: OBJECT``) as JSON Schema (``type: object``)."""
    if isinstance(schema, list):
        return [openapi_to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: Body = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str) and value.upper() in _TYPES:
            out[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {k: openapi_to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "anyOf", "any_of"):
            out["anyOf" if key == "any_of" else key] = openapi_to_json_schema(value)
        elif key == "nullable":
            continue
        else:
            out[_camel_schema_key(key)] = value
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _camel_schema_key(key: str) -> str:
    return {"max_items": "maxItems", "min_items": "minItems", "property_ordering": "propertyOrdering"}.get(key, key)


def _part_to_openai(part: Body, where: str) -> Body | None:
    if (text := get(part, "text")) is not None:
        return None if get(part, "thought") else {"type": "text", "text": str(text)}
    if (blob := get(part, "inlineData")) is not None:
        mime = get(blob, "mimeType") or "application/octet-stream"
        if not str(mime).startswith("image/"):
            raise BadRequest(f"{where}.inlineData: only images are supported, not {mime}", param=where)
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{get(blob, 'data') or ''}"}}
    if (file := get(part, "fileData")) is not None:
        mime = str(get(file, "mimeType") or "")
        uri = get(file, "fileUri")
        if not mime.startswith("image/") or not isinstance(uri, str):
            raise BadRequest(f"{where}.fileData: only image URLs are supported", param=where)
        return {"type": "image_url", "image_url": {"url": uri}}
    raise BadRequest(f"{where}: unsupported part {sorted(part)!r}", param=where)


def _content_text(parts: list[Body]) -> str | list[Body]:
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def to_chat(body: Body) -> tuple[list[Body], Body]:
    """(messages, the rest of the OpenAI request) for the core; 400s name the field."""
    contents = get(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("contents: at least one content is required", param="contents")
    messages: list[Body] = []
    system = get(body, "systemInstruction")
    if isinstance(system, str):
        system = {"parts": [{"text": system}]}
    if isinstance(system, dict):
        text = "\n".join(str(get(p, "text") or "") for p in get(system, "parts") or [] if isinstance(p, dict))
        if text:
            messages.append({"role": "system", "content": text})
    unanswered: dict[str, list[str]] = {}  # name -> ids of calls not yet answered, oldest first
    position = 0
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(content, dict) or not isinstance(get(content, "parts"), list):
            raise BadRequest(f"{where}.parts: required", param=f"{where}.parts")
        role = get(content, "role") or "user"
        parts: list[Body] = []
        calls: list[Body] = []
        results: list[Body] = []
        for j, part in enumerate(get(content, "parts")):
            at = f"{where}.parts[{j}]"
            if not isinstance(part, dict):
                raise BadRequest(f"{at}: must be an object", param=at)
            if (fc := get(part, "functionCall")) is not None:
                name = str(get(fc, "name") or "")
                args = get(fc, "args") or {}
                cid = get(fc, "id") or tool_call_id(name, position, args)
                position += 1
                unanswered.setdefault(name, []).append(cid)
                fn = {"name": name, "arguments": dump_arguments(args)}
                calls.append({"id": cid, "type": "function", "function": fn})
            elif (fr := get(part, "functionResponse")) is not None:
                name = str(get(fr, "name") or "")
                waiting = unanswered.get(name) or []
                cid = get(fr, "id") or (waiting[0] if waiting else tool_call_id(name, -1, {}))
                if cid in waiting:
                    waiting.remove(cid)
                results.append(
                    {"role": "tool", "tool_call_id": cid, "content": orjson.dumps(get(fr, "response") or {}).decode()}
                )
            elif (converted := _part_to_openai(part, at)) is not None:
                parts.append(converted)
        if role == "model":
            message: Body = {"role": "assistant", "content": _content_text(parts) if parts else None}
            if calls:
                message["tool_calls"] = calls
            messages.append(message)
        else:
            messages.extend(results)
            if parts:
                messages.append({"role": "user", "content": _content_text(parts)})
    return messages, _params(body)


def _params(body: Body) -> Body:
    params: Body = {}
    config = get(body, "generationConfig") or {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("max_tokens", "maxOutputTokens"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ):
        if (value := get(config, theirs)) is not None:
            params[ours] = value
    if stops := get(config, "stopSequences"):
        params["stop"] = stops
    if get(config, "candidateCount") not in (None, 1):
        where = "generationConfig.candidateCount"
        raise BadRequest(f"{where}: only 1 is supported", param=where)
    schema = get(config, "responseJsonSchema") or get(config, "responseSchema")
    if get(config, "responseMimeType") == "application/json" or schema:
        if schema:
            json_schema = {"name": "response", "schema": openapi_to_json_schema(schema)}
            params["response_format"] = {"type": "json_schema", "json_schema": json_schema}
        else:
            params["response_format"] = {"type": "json_object"}
    tools: list[Body] = []
    for i, tool in enumerate(get(body, "tools") or []):
        declarations = get(tool, "functionDeclarations")
        if declarations is None:
            raise BadRequest(f"tools[{i}]: only function declarations are supported", param=f"tools[{i}]")
        for d in declarations:
            schema = get(d, "parametersJsonSchema")
            if schema is None and get(d, "parameters") is not None:
                schema = openapi_to_json_schema(get(d, "parameters"))
            fn: Body = {"name": get(d, "name")}
            if get(d, "description"):
                fn["description"] = get(d, "description")
            fn["parameters"] = schema or {"type": "object", "properties": {}}
            tools.append({"type": "function", "function": fn})
    if tools:
        params["tools"] = tools
    fcc = get(get(body, "toolConfig"), "functionCallingConfig") or {}
    mode = str(get(fcc, "mode") or "").upper()
    allowed = get(fcc, "allowedFunctionNames") or []
    if mode == "NONE":
        params["tool_choice"] = "none"
    elif mode == "ANY":
        if len(allowed) == 1:
            params["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
        else:
            params["tool_choice"] = "required"
    elif mode in ("AUTO", "VALIDATED"):
        params["tool_choice"] = "auto"
    return params


# ---- replies: the core -> Gemini ------------------------------------------------------------


def usage_metadata(usage: Body | None) -> Body:
    u = usage or {}
    prompt = int(u.get("prompt_tokens") or 0)
    completion = int(u.get("completion_tokens") or 0)
    out: Body = {"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion}
    if cached := (u.get("prompt_tokens_details") or {}).get("cached_tokens"):
        out["cachedContentTokenCount"] = cached
    if thoughts := (u.get("completion_tokens_details") or {}).get("reasoning_tokens"):
        out["thoughtsTokenCount"] = thoughts
    return out


def call_parts(calls: list[Body] | None) -> list[Body]:
    out = []
    for call in calls or ():
        fn = call.get("function") or {}
        args = tool_arguments(fn.get("arguments", ""))
        out.append({"functionCall": {"id": call.get("id"), "name": fn.get("name", ""), "args": args}})
    return out


def parts_of(message: Body) -> list[Body]:
    parts: list[Body] = []
    if message.get("reasoning_content"):
        parts.append({"text": message["reasoning_content"], "thought": True})
    if message.get("content"):
        parts.append({"text": message["content"]})
    return parts + call_parts(message.get("tool_calls"))


def response_body(reply: Reply, response_id: str) -> Body:
    candidate = {
        "content": {"role": "model", "parts": parts_of(reply.message)},
        "finishReason": FINISH.get(reply.finish_reason or "stop", "STOP"),
        "index": 0,
    }
    return {
        "candidates": [candidate],
        "usageMetadata": usage_metadata(reply.usage),
        "modelVersion": reply.model,
        "responseId": response_id,
    }


def error_body(exc: ParleyError) -> Body:
    status = STATUS.get(exc.status, "INTERNAL" if exc.status >= 500 else "INVALID_ARGUMENT")
    return {"error": {"code": exc.status, "message": exc.message, "status": status}}


def _sse(data: Body) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\r\n\r\n"


class StreamEncoder:
    """OpenAI chunks → Gemini's SSE chunks: text and thoughts as they come; function calls,
    which Gemini sends whole, with the last chunk (with the finish reason and usage)."""

    ping = b"\r\n"  # Gemini's SDK parses every non-blank line as JSON: no SSE comments

    def __init__(self, model: str) -> None:
        self.headers: dict[str, str] = {}
        self.model = model
        self.response_id = secrets.token_urlsafe(16)
        # A text chunk's frame around its parts, as ``_sse(self._chunk(parts))`` writes it
        # (orjson: compact, keys in order): a chunk then costs its texts' encoding alone.
        self._head = b'data: {"candidates":[{"content":{"role":"model","parts":['
        self._tail = (
            b']},"index":0}],"modelVersion":'
            + orjson.dumps(model)
            + b',"responseId":'
            + orjson.dumps(self.response_id)
            + b"}\r\n\r\n"
        )

    def reply(self, reply: Reply) -> Body:
        return response_body(reply, self.response_id)

    def opening(self, references: list[Body]) -> list[bytes]:
        return []

    def _chunk(self, parts: list[Body], **candidate: Any) -> Body:
        return {
            "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0, **candidate}],
            "modelVersion": self.model,
            "responseId": self.response_id,
        }

    def chunk(self, chunk: Body, builder: MessageBuilder) -> bytes | None:
        parts: list[bytes] = []  # each {"text": …} part, serialised
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if not delta:
                continue
            if thought := delta.get("reasoning_content") or delta.get("reasoning"):
                parts.append(b'{"text":' + orjson.dumps(thought) + b',"thought":true}')
            if text := delta.get("content"):
                parts.append(b'{"text":' + orjson.dumps(text) + b"}")
        return self._head + b",".join(parts) + self._tail if parts else None

    def closing(self, reply: Reply) -> list[bytes]:
        last = self._chunk(
            call_parts(reply.message.get("tool_calls")), finishReason=FINISH.get(reply.finish_reason or "stop", "STOP")
        )
        last["usageMetadata"] = usage_metadata(reply.usage)
        return [_sse(last)]

    def error(self, exc: ParleyError) -> bytes:
        return _sse(error_body(exc))
