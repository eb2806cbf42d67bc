"""Gemini's ``generateContent`` API <-> OpenAI's chat shapes.

Requests: system and developer messages join into ``systemInstruction``; roles become
``user``/``model``; images must arrive here as data URLs (the provider fetches http(s) images
first: Gemini takes only inline bytes) and become ``inlineData``; tool schemas are rewritten to
the subset Gemini accepts (wire/gemini_schema.py); ``response_format`` becomes
``responseMimeType``/``responseSchema``; ``reasoning_effort`` becomes a thinking budget with
thought summaries included.

Tool calls: Gemini's ``functionCall`` may carry no id, so one is made from the call's name,
position and arguments (the same call always gets the same id, whole or streamed). A ``tool``
message names only the id; the function name Gemini wants in ``functionResponse`` is looked up
in the earlier assistant message that made the call. Gemini's ``thoughtSignature`` on a call
travels as ``extra_content.google.thought_signature`` on the tool call (the convention of
Google's own OpenAI-compatible endpoint) and is sent back when a later request carries it;
a model turn with calls but no signature at all gets Google's documented placeholder, which
Gemini 3 models require.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson

from parley.errors import BadRequest, UpstreamError
from parley.wire.common import (
    Body,
    ChunkMaker,
    completion,
    content_text,
    dump_arguments,
    max_output_tokens,
    parse_data_url,
    single_choice,
    stop_sequences,
    system_prompt,
    tool_arguments,
    tool_names_by_id,
    turns,
    usage,
)
from parley.wire.gemini_schema import is_empty_object, to_gemini

# What Google's own OpenAI-compatible endpoint maps reasoning_effort to.
THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
# Google's documented placeholder for function calls whose signature was lost.
SKIP_SIGNATURE = "skip_thought_signature_validator"

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "MODEL_ARMOR": "content_filter",
}
AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


def model_path(model: str) -> str:
    """``models/NAME`` (or a tuned model's own path) for the URL."""
    return model if "/" in model else f"models/{model}"


def tool_call_id(name: str, index: int, args: Any) -> str:
    """A stable id for a call Gemini sent without one."""
    digest = hashlib.sha256(f"{name}\n{index}\n".encode() + orjson.dumps(args, option=orjson.OPT_SORT_KEYS))
    return "call_" + digest.hexdigest()[:24]


# ---------------------------------------------------------------- request


def _inline(url: str, param: str) -> Body:
    if not url.startswith("data:"):
        raise BadRequest(f"'{param}' must be a data: URL for this model's provider.", param=param)
    mime, data = parse_data_url(url, param)
    return {"inlineData": {"mimeType": mime, "data": data}}


def _parts(content: Any, param: str) -> list[Body]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[Body] = []
    for j, part in enumerate(content or ()):
        where = f"{param}[{j}]"
        kind = part.get("type")
        if kind in ("text", "refusal"):
            if text := part.get("text") or part.get("refusal"):
                parts.append({"text": text})
        elif kind == "image_url":
            parts.append(_inline(part["image_url"]["url"], f"{where}.image_url.url"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = AUDIO_TYPES.get(audio.get("format", ""), "audio/wav")
            parts.append({"inlineData": {"mimeType": mime, "data": audio.get("data", "")}})
        elif kind == "file":
            parts.append(_inline((part.get("file") or {}).get("file_data") or "", f"{where}.file.file_data"))
        else:
            raise BadRequest(f"'{where}': {kind} content is not supported by this model's provider.", param=where)
    return parts


def _model_parts(m: Body, i: int) -> list[Body]:
    parts = _parts(m.get("content"), f"messages[{i}].content")
    calls = m.get("tool_calls") or []
    signed = False
    for call in calls:
        fn = call.get("function") or {}
        part: Body = {
            "functionCall": {
                "name": fn.get("name", ""),
                "args": tool_arguments(fn.get("arguments")),
            }
        }
        signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
        if signature:
            part["thoughtSignature"] = signature
            signed = True
        parts.append(part)
    if calls and not signed:
        next(p for p in parts if "functionCall" in p)["thoughtSignature"] = SKIP_SIGNATURE
    return parts


def _function_response(m: Body, i: int, names: dict[str, str]) -> Body:
    name = names.get(m.get("tool_call_id") or "") or m.get("name")
    if not name:
        raise BadRequest(
            f"'messages[{i}].tool_call_id' does not match a tool call of an earlier assistant message.",
            param=f"messages[{i}].tool_call_id",
        )
    text = content_text(m.get("content"))
    try:
        output: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        output = text
    return {"functionResponse": {"name": name, "response": {"output": output}}}


def _contents(messages: list[Body]) -> list[Body]:
    names = tool_names_by_id(messages)
    return turns(
        messages,
        user=lambda m, i: _parts(m.get("content"), f"messages[{i}].content"),
        assistant=_model_parts,
        tool=lambda m, i: [_function_response(m, i, names)],
        model_role="model",
        key="parts",
    )


def _declaration(fn: Body) -> Body:
    out: Body = {"name": fn["name"]}
    if fn.get("description"):
        out["description"] = fn["description"]
    params = to_gemini(fn.get("parameters"))
    if not is_empty_object(params):
        out["parameters"] = params
    return out


def _tool_config(body: Body) -> Body | None:
    choice = body.get("tool_choice")
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name", "")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    if choice == "auto":
        return {"functionCallingConfig": {"mode": "AUTO"}}
    return None


def _generation_config(body: Body) -> Body:
    config: Body = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    if limit := max_output_tokens(body):
        config["maxOutputTokens"] = limit
    if stops := stop_sequences(body):
        config["stopSequences"] = stops
    fmt = body.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseSchema"] = to_gemini(schema)
    effort = body.get("reasoning_effort")
    if effort:
        if effort not in THINKING_BUDGETS:
            raise BadRequest(f"Invalid value for 'reasoning_effort': {effort!r}.", param="reasoning_effort")
        budget = THINKING_BUDGETS[effort]
        config["thinkingConfig"] = {"thinkingBudget": budget, **({"includeThoughts": True} if budget else {})}
    return config


def to_request(body: Body) -> Body:
    """An OpenAI chat request as a Gemini ``generateContent`` request body."""
    single_choice(body)
    messages = body.get("messages") or []
    out: Body = {"contents": _contents(messages)}
    if system := system_prompt(messages):
        out["systemInstruction"] = {"parts": [{"text": system}]}
    tools = [t["function"] for t in body.get("tools") or () if t.get("type") == "function"]
    if tools:
        out["tools"] = [{"functionDeclarations": [_declaration(fn) for fn in tools]}]
        if (config := _tool_config(body)) is not None:
            out["toolConfig"] = config
    if generation := _generation_config(body):
        out["generationConfig"] = generation
    return out


# ---------------------------------------------------------------- response


def openai_usage(meta: Body) -> Body:
    """Gemini counts thoughts apart from ``candidatesTokenCount``; OpenAI's completion tokens
    include them (as ``reasoning_tokens``). Cached content is part of the prompt in both."""
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    completion_tokens = int(meta.get("candidatesTokenCount") or 0) + thoughts
    return usage(
        prompt,
        completion_tokens,
        cached=int(meta.get("cachedContentTokenCount") or 0),
        reasoning=thoughts,
        total=int(meta.get("totalTokenCount") or prompt + completion_tokens),
    )


def finish_reason(reason: str | None, called: bool) -> str | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    mapped = FINISH_REASONS.get(reason, "stop")
    return "tool_calls" if called and mapped == "stop" else mapped


def _tool_call(part: Body, index: int) -> Body:
    fc = part["functionCall"]
    args = fc.get("args") or {}
    call: Body = {
        "id": fc.get("id") or tool_call_id(fc.get("name", ""), index, args),
        "type": "function",
        "function": {"name": fc.get("name", ""), "arguments": dump_arguments(args)},
    }
    if part.get("thoughtSignature"):
        call["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return call


def _candidate(data: Body) -> Body:
    candidates = data.get("candidates") or []
    return candidates[0] if candidates else {}


def _blocked(data: Body) -> bool:
    """The prompt itself was refused: no candidate at all, a block reason instead."""
    return not data.get("candidates") and bool((data.get("promptFeedback") or {}).get("blockReason"))


def from_response(data: Body, model: str, created: int | None = None) -> Body:
    """A Gemini ``GenerateContentResponse`` as an OpenAI ``chat.completion``."""
    candidate = _candidate(data)
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[Body] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if "functionCall" in part:
            calls.append(_tool_call(part, len(calls)))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    message: Body = {"role": "assistant", "content": "".join(texts) if texts or not calls else None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if _blocked(data):
        reason: str | None = "content_filter"
    else:
        reason = finish_reason(candidate.get("finishReason"), bool(calls)) or "stop"
    return completion(
        data.get("responseId") or "",
        data.get("modelVersion") or model,
        message,
        reason,
        openai_usage(data.get("usageMetadata") or {}),
        created,
    )


class StreamTranslator:
    """Gemini's streamed ``GenerateContentResponse`` chunks, fed one at a time, as OpenAI chunks.

    Gemini sends each function call whole, so a call's first (and only) delta carries its
    index, id, name and all of its arguments. Usage comes on every chunk, the last one final:
    the finish chunk carries it, and a usage chunk follows at the end only if it changed.
    """

    def __init__(self, model: str) -> None:
        self.chunks = ChunkMaker(model=model)
        self.usage: Body = {}
        self.done = False
        self.finished = False
        self._started = False
        self._calls = 0
        self._usage_sent: Body | None = None  # the usage the finish chunk carried

    def feed(self, data: Body) -> list[Body]:
        out: list[Body] = []
        if not self._started:
            self._started = True
            self.chunks.id = data.get("responseId") or ""
            self.chunks.model = data.get("modelVersion") or self.chunks.model
            out.append(self.chunks.delta({"role": "assistant", "content": ""}))
        if data.get("usageMetadata"):
            self.usage = data["usageMetadata"]
        candidate = _candidate(data)
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "functionCall" in part:
                call = _tool_call(part, self._calls)
                out.append(self.chunks.delta({"tool_calls": [{"index": self._calls, **call}]}))
                self._calls += 1
            elif isinstance(part.get("text"), str) and part["text"]:
                key = "reasoning_content" if part.get("thought") else "content"
                out.append(self.chunks.delta({key: part["text"]}))
        reason = "content_filter" if _blocked(data) else finish_reason(candidate.get("finishReason"), self._calls > 0)
        if reason and not self.finished:
            self.finished = True
            # The usage so far rides on the finish chunk (the chat core takes usage from any
            # chunk): the end needs no usage chunk of its own unless the usage changes after.
            finish = self.chunks.delta({}, reason)
            finish["usage"] = openai_usage(self.usage)
            self._usage_sent = self.usage
            out.append(finish)
        return out

    def end(self) -> list[Body]:
        if not self.finished:
            raise UpstreamError("The model provider ended the stream before the answer was complete")
        self.done = True
        return [] if self.usage == self._usage_sent else [self.chunks.usage(openai_usage(self.usage))]


# ---------------------------------------------------------------- errors and embeddings


def _error(body: Any) -> Body:
    """Google's ``{"error": {"code", "message", "status", "details"}}`` (streams may wrap it
    in a list)."""
    if isinstance(body, list) and body:
        body = body[0]
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, dict) else {}


def error_message(body: Any) -> str | None:
    message = _error(body).get("message")
    return str(message) if message else None


def error_status(body: Any, default: int = 500) -> int:
    """The HTTP status an error stands for. A key Google does not accept comes as 400
    ``API_KEY_INVALID``: that is the server's configuration, so it counts as a 401."""
    err = _error(body)
    reasons = {d.get("reason") for d in err.get("details") or () if isinstance(d, dict)}
    if "API_KEY_INVALID" in reasons:
        return 401
    code = err.get("code")
    return code if isinstance(code, int) and code >= 400 else default


def retry_delay(body: Any) -> str | None:
    """Seconds to wait, from a 429's ``RetryInfo`` detail (``"retryDelay": "37s"``)."""
    for detail in _error(body).get("details") or ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return str(math.ceil(float(delay[:-1])))
            except ValueError:
                return None
    return None


def embed_request(model: str, texts: list[str]) -> Body:
    """A ``batchEmbedContents`` body: one request per text."""
    path = model_path(model)
    return {"requests": [{"model": path, "content": {"parts": [{"text": t}]}} for t in texts]}


def embeddings(data: Body) -> list[list[float]]:
    try:
        return [list(map(float, e["values"])) for e in data["embeddings"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError("The model provider sent malformed embeddings") from exc
