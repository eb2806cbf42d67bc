"""A Responses request: validated, then translated into the chat form every provider takes.

Input items are normalized to the shapes OpenAI lists them in (every item with an id and a
status, message content as parts), so they can be stored and listed as they are and turned
into chat messages later, once ``previous_response_id`` and item references are resolved.
Everything Parley cannot honour is refused with a 400 that names it, never dropped quietly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.api.common import validate
from parley.errors import BadRequest
from parley.responses.ids import new_id

Body = dict[str, Any]

Strict = ConfigDict(extra="forbid", strict=True)
NAME = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")
MAX_ITEM_ID = 255
INCLUDABLE = ("file_search_call.results",)
FILTER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")


class Reasoning(BaseModel):
    model_config = Strict
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None  # the older name of summary


class TextConfig(BaseModel):
    model_config = Strict
    format: dict[str, Any] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class StreamOptions(BaseModel):
    model_config = Strict
    include_obfuscation: bool | None = None


class ResponsesRequest(BaseModel):
    """The body of ``POST /v1/responses`` (input items, tools and formats are checked one by one)."""

    model_config = Strict
    model: str
    input: str | list[Any]
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = True
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_output_tokens: Annotated[int, Field(ge=16)] | None = None
    max_tool_calls: Annotated[int, Field(ge=1)] | None = None
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None
    context_management: Any = None


@dataclass
class Parsed:
    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    items: list[Body]  # the new input, normalized (item references still to resolve)
    system: list[Body]  # the instructions, as a system message
    params: Body  # the chat request's other fields
    echo: Body = field(default_factory=dict)  # what the response object repeats of the request
    search: Body | None = None  # file_search: Parley memories to retrieve from, as the turn takes them
    search_results: bool = False  # include "file_search_call.results"


def _unsupported(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param, code="unsupported_parameter")


def _invalid(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param, code="invalid_value")


def _missing(param: str) -> BadRequest:
    return BadRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _refuse_unsupported(req: ResponsesRequest) -> None:
    if req.background:
        raise _unsupported("Parley does not run responses in the background: leave 'background' unset.", "background")
    if req.conversation is not None:
        raise _unsupported(
            "Parley does not support 'conversation': continue from a response with 'previous_response_id'.",
            "conversation",
        )
    if req.prompt is not None:
        raise _unsupported("Parley does not support stored prompt templates ('prompt').", "prompt")
    if req.context_management:
        raise _unsupported("Parley does not support 'context_management'.", "context_management")
    if req.truncation == "auto":
        raise _unsupported("Parley does not truncate input: 'truncation' can only be 'disabled'.", "truncation")
    if req.top_logprobs:
        raise _unsupported("Parley does not return log probabilities ('top_logprobs').", "top_logprobs")
    for i, value in enumerate(req.include or ()):
        if value not in INCLUDABLE:
            raise _unsupported(f"Parley does not support the include value '{value}'.", f"include[{i}]")
    if req.metadata is not None:
        if len(req.metadata) > 16:
            raise _invalid("'metadata' can have at most 16 keys.", "metadata")
        for k, v in req.metadata.items():
            if len(k) > 64 or len(v) > 512:
                raise _invalid("'metadata' keys are at most 64 characters and values at most 512.", "metadata")


def _check_keys(obj: Body, allowed: set[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise BadRequest(f"Unknown parameter: '{where}.{key}'.", param=f"{where}.{key}", code="unknown_parameter")


def _filter(raw: Any, where: str) -> Body:
    """A file_search filter as Parley's attribute filter (``$eq``, ``$and``…)."""
    if not isinstance(raw, dict):
        raise _invalid(f"Invalid value for '{where}': expected a filter object.", where)
    kind = raw.get("type")
    if kind in ("and", "or"):
        _check_keys(raw, {"type", "filters"}, where)
        parts = raw.get("filters")
        if not isinstance(parts, list) or not parts:
            raise _invalid(f"Invalid value for '{where}.filters': expected a non-empty list.", f"{where}.filters")
        return {f"${kind}": [_filter(p, f"{where}.filters[{j}]") for j, p in enumerate(parts)]}
    if kind in FILTER_OPS:
        _check_keys(raw, {"type", "key", "value"}, where)
        key = _text(raw, "key", where)
        if "value" not in raw:
            raise _missing(f"{where}.value")
        return {key: {f"${kind}": raw["value"]}}
    raise _invalid(f"Invalid value for '{where}.type': use {', '.join(FILTER_OPS)}, 'and' or 'or'.", f"{where}.type")


def _file_search(tool: Body, where: str) -> Body:
    """The memory retrieval a file_search tool asks for: its vector stores are Parley memories."""
    _check_keys(tool, {"type", "vector_store_ids", "max_num_results", "filters", "ranking_options"}, where)
    ids = tool.get("vector_store_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise _invalid(
            f"Invalid value for '{where}.vector_store_ids': expected a list of memory ids.", f"{where}.vector_store_ids"
        )
    limit = tool.get("max_num_results")
    if limit is None:
        limit = 10
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 50:
        raise _invalid(f"Invalid value for '{where}.max_num_results': use 1 to 50.", f"{where}.max_num_results")
    ranking = tool.get("ranking_options") or {}
    if not isinstance(ranking, dict):
        raise _invalid(f"Invalid value for '{where}.ranking_options': expected an object.", f"{where}.ranking_options")
    _check_keys(ranking, {"ranker", "score_threshold"}, f"{where}.ranking_options")
    threshold = ranking.get("score_threshold")
    if threshold is None:
        threshold = 0.5  # Parley's calibrated "relevant" line (similarity is calibrated per model)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
        raise _invalid(
            f"Invalid value for '{where}.ranking_options.score_threshold': use 0 to 1.",
            f"{where}.ranking_options.score_threshold",
        )
    search: Body = {"collections": ids, "limit": limit, "min_similarity": float(threshold)}
    if tool.get("filters") is not None:
        search["content_filter"] = {"attrs": _filter(tool["filters"], f"{where}.filters")}  # a content's attrs
    return search


def _tools(raw: list[Any]) -> tuple[list[Body], list[Body], Body | None]:
    """(chat tools, the tools as the response object lists them, the file_search retrieval)."""
    chat, echo = [], []
    search: Body | None = None
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _invalid(f"Invalid value for '{where}': expected an object.", where)
        kind = tool.get("type")
        if kind is None:
            raise _missing(f"{where}.type")
        if kind == "file_search":
            if search is not None:
                raise _invalid("Only one 'file_search' tool can be given.", where)
            search = _file_search(tool, where)
            echo.append(
                {
                    "type": "file_search",
                    "vector_store_ids": search["collections"],
                    "filters": tool.get("filters"),
                    "max_num_results": search["limit"],
                    "ranking_options": {"ranker": "auto", "score_threshold": search["min_similarity"]},
                }
            )
            continue
        if kind != "function":
            raise BadRequest(
                f"Parley does not support the '{kind}' tool: only 'function' and 'file_search' tools can be used.",
                param=f"{where}.type",
                code="unsupported_value",
            )
        _check_keys(tool, {"type", "name", "description", "parameters", "strict"}, where)
        name = tool.get("name")
        if name is None:
            raise _missing(f"{where}.name")
        if not isinstance(name, str) or not NAME.match(name):
            raise _invalid(f"Invalid '{where}.name': use 1 to 64 letters, digits, '_', '-' or '.'.", f"{where}.name")
        description, parameters, strict = tool.get("description"), tool.get("parameters"), tool.get("strict")
        if description is not None and not isinstance(description, str):
            raise _invalid(f"Invalid value for '{where}.description': expected a string.", f"{where}.description")
        if parameters is not None and not isinstance(parameters, dict):
            raise _invalid(f"Invalid value for '{where}.parameters': expected a JSON schema.", f"{where}.parameters")
        if strict is not None and not isinstance(strict, bool):
            raise _invalid(f"Invalid value for '{where}.strict': expected a boolean.", f"{where}.strict")
        function: Body = {"name": name}
        if description is not None:
            function["description"] = description
        if parameters is not None:
            function["parameters"] = parameters
        if strict is not None:
            function["strict"] = strict
        chat.append({"type": "function", "function": function})
        echo.append(
            {"type": "function", "name": name, "description": description, "parameters": parameters, "strict": strict}
        )
    return chat, echo, search


def _tool_choice(choice: str | Body | None, names: set[str], searching: bool) -> Any:
    """The chat ``tool_choice`` for a Responses one (None: leave it out)."""
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise _invalid(
                "Invalid value for 'tool_choice': use 'none', 'auto', 'required' or a function.", "tool_choice"
            )
        return choice
    kind = choice.get("type")
    if kind == "file_search" and searching:  # Parley searches before the model whenever the tool is given
        _check_keys(choice, {"type"}, "tool_choice")
        return None
    if kind != "function":
        raise BadRequest(
            f"Parley does not support tool_choice of type '{kind}': choose a 'function' or 'file_search' tool.",
            param="tool_choice.type",
            code="unsupported_value",
        )
    _check_keys(choice, {"type", "name"}, "tool_choice")
    name = choice.get("name")
    if not isinstance(name, str):
        raise _missing("tool_choice.name")
    if name not in names:
        raise _invalid(f"Tool choice '{name}' is not among the tools given in 'tools'.", "tool_choice.name")
    return {"type": "function", "function": {"name": name}}


def _response_format(fmt: Body | None) -> Body | None:
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind == "text":
        _check_keys(fmt, {"type"}, "text.format")
        return None
    if kind == "json_object":
        _check_keys(fmt, {"type"}, "text.format")
        return {"type": "json_object"}
    if kind == "json_schema":
        _check_keys(fmt, {"type", "name", "schema", "description", "strict"}, "text.format")
        name, schema = fmt.get("name"), fmt.get("schema")
        if name is None:
            raise _missing("text.format.name")
        if not isinstance(name, str) or not NAME.match(name):
            raise _invalid(
                "Invalid 'text.format.name': use 1 to 64 letters, digits, '_', '-' or '.'.", "text.format.name"
            )
        if not isinstance(schema, dict):
            raise (
                _missing("text.format.schema")
                if schema is None
                else _invalid("Invalid value for 'text.format.schema': expected a JSON schema.", "text.format.schema")
            )
        spec: Body = {"name": name, "schema": schema}
        for key in ("description", "strict"):
            if fmt.get(key) is not None:
                spec[key] = fmt[key]
        return {"type": "json_schema", "json_schema": spec}
    if kind is None:
        raise _missing("text.format.type")
    raise _invalid(
        f"Invalid value for 'text.format.type': '{kind}' (use 'text', 'json_object' or 'json_schema').",
        "text.format.type",
    )


def _item_id(item: Body, prefix: str, where: str) -> str:
    given = item.get("id")
    if given is None:
        return new_id(prefix)
    if not isinstance(given, str) or not given or len(given) > MAX_ITEM_ID:
        raise _invalid(f"Invalid value for '{where}.id': expected a string of at most 255 characters.", f"{where}.id")
    return given


def _text(part: Body, key: str, where: str) -> str:
    value = part.get(key)
    if not isinstance(value, str):
        raise (
            _missing(f"{where}.{key}")
            if value is None
            else _invalid(f"Invalid value for '{where}.{key}': expected a string.", f"{where}.{key}")
        )
    return value


def _input_part(part: Any, where: str) -> Body:
    """A part of a user, system or developer message."""
    if not isinstance(part, dict):
        raise _invalid(f"Invalid value for '{where}': expected an object.", where)
    kind = part.get("type")
    if kind == "input_text":
        return {"type": "input_text", "text": _text(part, "text", where)}
    if kind == "input_image":
        if part.get("file_id") is not None:
            raise _unsupported("Parley has no file storage: send images as 'image_url' (a URL or data URL).", where)
        url = _text(part, "image_url", where)
        return {"type": "input_image", "detail": part.get("detail") or "auto", "file_id": None, "image_url": url}
    if kind == "input_file":
        if part.get("file_id") is not None or part.get("file_url") is not None:
            raise _unsupported("Parley has no file storage: send files inline as 'file_data'.", where)
        out = {"type": "input_file", "file_data": _text(part, "file_data", where)}
        if isinstance(part.get("filename"), str):
            out["filename"] = part["filename"]
        return out
    if kind is None:
        raise _missing(f"{where}.type")
    raise BadRequest(
        f"Parley does not support content of type '{kind}' in input messages.",
        param=f"{where}.type",
        code="unsupported_value",
    )


def _assistant_part(part: Any, where: str) -> Body:
    if not isinstance(part, dict):
        raise _invalid(f"Invalid value for '{where}': expected an object.", where)
    kind = part.get("type")
    if kind in ("output_text", "input_text"):
        notes = part.get("annotations")
        notes = notes if isinstance(notes, list) else []  # kept for the record (file citations…)
        return {"type": "output_text", "annotations": notes, "logprobs": [], "text": _text(part, "text", where)}
    if kind == "refusal":
        return {"type": "refusal", "refusal": _text(part, "refusal", where)}
    raise _invalid(
        f"Invalid value for '{where}.type': assistant messages hold 'output_text' or 'refusal' parts.", f"{where}.type"
    )


def _message(item: Body, where: str) -> Body:
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise _invalid(
            f"Invalid value for '{where}.role': use 'user', 'assistant', 'system' or 'developer'.", f"{where}.role"
        )
    content = item.get("content")
    if content is None:
        raise _missing(f"{where}.content")
    if not isinstance(content, str | list):
        raise _invalid(
            f"Invalid value for '{where}.content': expected a string or a list of parts.", f"{where}.content"
        )
    if role == "assistant":
        parts = (
            [{"type": "output_text", "annotations": [], "logprobs": [], "text": content}]
            if isinstance(content, str)
            else [_assistant_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
        )
        return {
            "id": _item_id(item, "msg", where),
            "type": "message",
            "status": "completed",
            "content": parts,
            "role": "assistant",
        }
    parts = (
        [{"type": "input_text", "text": content}]
        if isinstance(content, str)
        else [_input_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
    )
    return {
        "id": _item_id(item, "msg", where),
        "type": "message",
        "role": role,
        "status": "completed",
        "content": parts,
    }


def _output_text(output: Any, where: str) -> str | list[Body]:
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise (
            _missing(f"{where}.output")
            if output is None
            else _invalid(
                f"Invalid value for '{where}.output': expected a string or a list of parts.", f"{where}.output"
            )
        )
    parts = []
    for j, part in enumerate(output):
        p = f"{where}.output[{j}]"
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
            raise BadRequest(
                "Parley passes function call outputs on as text: use a string or 'input_text' parts.",
                param=p,
                code="unsupported_value",
            )
        parts.append({"type": "input_text", "text": _text(part, "text", p)})
    return parts


def _item(item: Any, where: str) -> Body:
    if not isinstance(item, dict):
        raise _invalid(f"Invalid value for '{where}': expected an object.", where)
    kind = item.get("type")
    if kind == "message" or (kind is None and "role" in item):
        return _message(item, where)
    if kind == "function_call":
        return {
            "id": _item_id(item, "fc", where),
            "type": "function_call",
            "status": "completed",
            "arguments": _text(item, "arguments", where),
            "call_id": _text(item, "call_id", where),
            "name": _text(item, "name", where),
        }
    if kind == "function_call_output":
        return {
            "id": _item_id(item, "fco", where),
            "type": "function_call_output",
            "status": "completed",
            "call_id": _text(item, "call_id", where),
            "output": _output_text(item.get("output"), where),
        }
    if kind == "reasoning":
        # Kept in the record; chat models take no reasoning back, so it is not sent on.
        summary = item.get("summary") or []
        if not isinstance(summary, list):
            raise _invalid(f"Invalid value for '{where}.summary': expected a list.", f"{where}.summary")
        return {"id": _item_id(item, "rs", where), "type": "reasoning", "summary": summary}
    if kind == "file_search_call":
        # A search made for an earlier turn (clients resend their history): kept, not sent on.
        return {
            "id": _item_id(item, "fs", where),
            "type": "file_search_call",
            "status": item.get("status") or "completed",
            "queries": item.get("queries") or [],
            "results": item.get("results"),
        }
    if kind == "item_reference":
        return {"type": "item_reference", "id": _text(item, "id", where)}
    if kind is None:
        raise _missing(f"{where}.type")
    raise BadRequest(
        f"Parley does not support input items of type '{kind}'.", param=f"{where}.type", code="unsupported_value"
    )


def input_items(raw: str | list[Any]) -> list[Body]:
    if isinstance(raw, str):
        return [_message({"role": "user", "content": raw}, "input")]
    return [_item(item, f"input[{i}]") for i, item in enumerate(raw)]


def parse(raw: Any) -> Parsed:
    if isinstance(raw, dict):
        for key in raw:
            if key not in ResponsesRequest.model_fields:
                raise BadRequest(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    req = validate(ResponsesRequest, raw)
    _refuse_unsupported(req)
    chat_tools, echo_tools, search = _tools(req.tools or [])
    names = {t["name"] for t in echo_tools if t["type"] == "function"}
    choice = _tool_choice(req.tool_choice, names, search is not None)
    text = req.text or TextConfig()
    fmt = _response_format(text.format)
    effort = req.reasoning.effort if req.reasoning else None
    summary = (req.reasoning.summary or req.reasoning.generate_summary) if req.reasoning else None

    params: Body = {}
    for key in ("temperature", "top_p", "user", "safety_identifier", "prompt_cache_key", "service_tier"):
        if (value := getattr(req, key)) is not None:
            params[key] = value
    if req.prompt_cache_retention is not None:
        params["prompt_cache_retention"] = req.prompt_cache_retention
    if req.max_output_tokens is not None:
        params["max_tokens"] = req.max_output_tokens
    if chat_tools:
        params["tools"] = chat_tools
        if req.parallel_tool_calls is not None:  # chat APIs refuse it without tools
            params["parallel_tool_calls"] = req.parallel_tool_calls
    if choice == "required" and not chat_tools and search is None:
        raise _invalid("Tool choice 'required' must be specified with the 'tools' parameter.", "tool_choice")
    if choice is not None and chat_tools:  # chat APIs refuse a tool_choice without tools
        params["tool_choice"] = choice
    if fmt is not None:
        params["response_format"] = fmt
    if text.verbosity is not None:
        params["verbosity"] = text.verbosity
    if effort is not None:
        params["reasoning_effort"] = effort

    text_echo: Body = {"format": text.format or {"type": "text"}}
    if text.verbosity is not None:
        text_echo["verbosity"] = text.verbosity
    echo: Body = {
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "parallel_tool_calls": req.parallel_tool_calls if req.parallel_tool_calls is not None else True,
        "previous_response_id": req.previous_response_id,
        "prompt_cache_key": req.prompt_cache_key,
        "reasoning": {"effort": effort, "summary": summary},
        "safety_identifier": req.safety_identifier,
        "service_tier": req.service_tier or "default",
        "store": req.store is not False,
        "temperature": req.temperature,
        "text": text_echo,
        "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
        "tools": echo_tools,
        "top_logprobs": req.top_logprobs or 0,
        "top_p": req.top_p,
        "truncation": "disabled",
        "user": req.user,
        "metadata": req.metadata or {},
    }
    system = [{"role": "system", "content": req.instructions}] if req.instructions else []
    return Parsed(
        model=req.model,
        stream=bool(req.stream),
        store=req.store is not False,
        previous_response_id=req.previous_response_id,
        items=input_items(req.input),
        system=system,
        params=params,
        echo=echo,
        search=search,
        search_results="file_search_call.results" in (req.include or ()),
    )


def _user_content(parts: list[Body]) -> str | list[Body]:
    if len(parts) == 1 and parts[0]["type"] == "input_text":
        return str(parts[0]["text"])
    out: list[Body] = []
    for p in parts:
        if p["type"] == "input_text":
            out.append({"type": "text", "text": p["text"]})
        elif p["type"] == "input_image":
            image: Body = {"url": p["image_url"]}
            if p.get("detail") and p["detail"] != "auto":
                image["detail"] = p["detail"]
            out.append({"type": "image_url", "image_url": image})
        elif p["type"] == "input_file":
            out.append({"type": "file", "file": {k: p[k] for k in ("file_data", "filename") if k in p}})
    return out


def _assistant_text(parts: list[Body]) -> str | None:
    texts = [p["text"] for p in parts if p.get("type") == "output_text"]
    if texts:
        return "".join(texts)
    refusals = [p["refusal"] for p in parts if p.get("type") == "refusal"]
    return "".join(refusals) if refusals else None


def to_chat(items: list[Body], check: bool = True) -> list[Body]:
    """Normalized items as chat messages: a function call joins the assistant message before it
    (as chat puts a turn's calls in one message); reasoning items and earlier searches are not
    sent on. With
    ``check``, calls and their outputs must pair up as chat upstreams require."""
    out: list[Body] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            role = item["role"]
            if role == "assistant":
                text = _assistant_text(item["content"])
                last = out[-1] if out else None
                if last and last["role"] == "assistant" and last.get("tool_calls") and last["content"] is None:
                    last["content"] = text
                else:
                    out.append({"role": "assistant", "content": text})
            elif role in ("system", "developer"):  # every chat upstream knows "system"
                out.append({"role": "system", "content": "\n\n".join(p.get("text", "") for p in item["content"])})
            else:
                out.append({"role": "user", "content": _user_content(item["content"])})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = out[-1] if out else None
            if last and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else "".join(p["text"] for p in output)
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
    if check:
        _check_pairs(out)
    return out


def _check_pairs(messages: list[Body]) -> None:
    """Every call answered before the conversation moves on, every output answering a call:
    chat upstreams refuse anything else, so say which one here."""
    waiting: list[str] = []
    for m in messages:
        if m["role"] == "tool":
            if m["tool_call_id"] not in waiting:
                raise BadRequest(
                    f"No tool call found for function call output with call_id {m['tool_call_id']}.", param="input"
                )
            waiting.remove(m["tool_call_id"])
            continue
        if waiting:
            raise BadRequest(f"No tool output found for function call {waiting[0]}.", param="input")
        waiting = [c["id"] for c in m.get("tool_calls") or ()]
    if waiting:  # the input ends in calls nobody answered: there is nothing for the model to do
        raise BadRequest(f"No tool output found for function call {waiting[0]}.", param="input")
