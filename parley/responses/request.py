"""A Responses request: validated, then translated into the chat form every provider takes
(tools, tool choice, text format, sampling; the input items: items.py). Everything Parley
cannot honour is refused with a 400 that names it, never dropped quietly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.api.common import validate
from parley.errors import BadRequest
from parley.responses.checks import check_keys, invalid, missing, text_field, unsupported
from parley.responses.items import input_items

Body = dict[str, Any]

Strict = ConfigDict(extra="forbid", strict=True)
NAME = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")
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


def _refuse_unsupported(req: ResponsesRequest) -> None:
    if req.background:
        raise unsupported("Parley does not run responses in the background: leave 'background' unset.", "background")
    if req.conversation is not None:
        raise unsupported(
            "Parley does not support 'conversation': continue from a response with 'previous_response_id'.",
            "conversation",
        )
    if req.prompt is not None:
        raise unsupported("Parley does not support stored prompt templates ('prompt').", "prompt")
    if req.context_management:
        raise unsupported("Parley does not support 'context_management'.", "context_management")
    if req.truncation == "auto":
        raise unsupported("Parley does not truncate input: 'truncation' can only be 'disabled'.", "truncation")
    if req.top_logprobs:
        raise unsupported("Parley does not return log probabilities ('top_logprobs').", "top_logprobs")
    for i, value in enumerate(req.include or ()):
        if value not in INCLUDABLE:
            raise unsupported(f"Parley does not support the include value '{value}'.", f"include[{i}]")
    if req.metadata is not None:
        if len(req.metadata) > 16:
            raise invalid("'metadata' can have at most 16 keys.", "metadata")
        for k, v in req.metadata.items():
            if len(k) > 64 or len(v) > 512:
                raise invalid("'metadata' keys are at most 64 characters and values at most 512.", "metadata")


def _filter(raw: Any, where: str) -> Body:
    """A file_search filter as Parley's attribute filter (``$eq``, ``$and``…)."""
    if not isinstance(raw, dict):
        raise invalid(f"Invalid value for '{where}': expected a filter object.", where)
    kind = raw.get("type")
    if kind in ("and", "or"):
        check_keys(raw, {"type", "filters"}, where)
        parts = raw.get("filters")
        if not isinstance(parts, list) or not parts:
            raise invalid(f"Invalid value for '{where}.filters': expected a non-empty list.", f"{where}.filters")
        return {f"${kind}": [_filter(p, f"{where}.filters[{j}]") for j, p in enumerate(parts)]}
    if kind in FILTER_OPS:
        check_keys(raw, {"type", "key", "value"}, where)
        key = text_field(raw, "key", where)
        if "value" not in raw:
            raise missing(f"{where}.value")
        return {key: {f"${kind}": raw["value"]}}
    raise invalid(f"Invalid value for '{where}.type': use {', '.join(FILTER_OPS)}, 'and' or 'or'.", f"{where}.type")


def _file_search(tool: Body, where: str) -> Body:
    """The memory retrieval a file_search tool asks for: its vector stores are Parley memories."""
    check_keys(tool, {"type", "vector_store_ids", "max_num_results", "filters", "ranking_options"}, where)
    ids = tool.get("vector_store_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise invalid(
            f"Invalid value for '{where}.vector_store_ids': expected a list of memory ids.", f"{where}.vector_store_ids"
        )
    limit = tool.get("max_num_results")
    if limit is None:
        limit = 10
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 50:
        raise invalid(f"Invalid value for '{where}.max_num_results': use 1 to 50.", f"{where}.max_num_results")
    ranking = tool.get("ranking_options") or {}
    if not isinstance(ranking, dict):
        raise invalid(f"Invalid value for '{where}.ranking_options': expected an object.", f"{where}.ranking_options")
    check_keys(ranking, {"ranker", "score_threshold"}, f"{where}.ranking_options")
    threshold = ranking.get("score_threshold")
    if threshold is None:
        threshold = 0.5  # Parley's calibrated "relevant" line (similarity is calibrated per model)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
        raise invalid(
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
            raise invalid(f"Invalid value for '{where}': expected an object.", where)
        kind = tool.get("type")
        if kind is None:
            raise missing(f"{where}.type")
        if kind == "file_search":
            if search is not None:
                raise invalid("Only one 'file_search' tool can be given.", where)
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
        check_keys(tool, {"type", "name", "description", "parameters", "strict"}, where)
        name = tool.get("name")
        if name is None:
            raise missing(f"{where}.name")
        if not isinstance(name, str) or not NAME.match(name):
            raise invalid(f"Invalid '{where}.name': use 1 to 64 letters, digits, '_', '-' or '.'.", f"{where}.name")
        description, parameters, strict = tool.get("description"), tool.get("parameters"), tool.get("strict")
        if description is not None and not isinstance(description, str):
            raise invalid(f"Invalid value for '{where}.description': expected a string.", f"{where}.description")
        if parameters is not None and not isinstance(parameters, dict):
            raise invalid(f"Invalid value for '{where}.parameters': expected a JSON schema.", f"{where}.parameters")
        if strict is not None and not isinstance(strict, bool):
            raise invalid(f"Invalid value for '{where}.strict': expected a boolean.", f"{where}.strict")
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
            raise invalid(
                "Invalid value for 'tool_choice': use 'none', 'auto', 'required' or a function.", "tool_choice"
            )
        return choice
    kind = choice.get("type")
    if kind == "file_search" and searching:  # Parley searches before the model whenever the tool is given
        check_keys(choice, {"type"}, "tool_choice")
        return None
    if kind != "function":
        raise BadRequest(
            f"Parley does not support tool_choice of type '{kind}': choose a 'function' or 'file_search' tool.",
            param="tool_choice.type",
            code="unsupported_value",
        )
    check_keys(choice, {"type", "name"}, "tool_choice")
    name = choice.get("name")
    if not isinstance(name, str):
        raise missing("tool_choice.name")
    if name not in names:
        raise invalid(f"Tool choice '{name}' is not among the tools given in 'tools'.", "tool_choice.name")
    return {"type": "function", "function": {"name": name}}


def _response_format(fmt: Body | None) -> Body | None:
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind == "text":
        check_keys(fmt, {"type"}, "text.format")
        return None
    if kind == "json_object":
        check_keys(fmt, {"type"}, "text.format")
        return {"type": "json_object"}
    if kind == "json_schema":
        check_keys(fmt, {"type", "name", "schema", "description", "strict"}, "text.format")
        name, schema = fmt.get("name"), fmt.get("schema")
        if name is None:
            raise missing("text.format.name")
        if not isinstance(name, str) or not NAME.match(name):
            raise invalid(
                "Invalid 'text.format.name': use 1 to 64 letters, digits, '_', '-' or '.'.", "text.format.name"
            )
        if not isinstance(schema, dict):
            raise (
                missing("text.format.schema")
                if schema is None
                else invalid("Invalid value for 'text.format.schema': expected a JSON schema.", "text.format.schema")
            )
        spec: Body = {"name": name, "schema": schema}
        for key in ("description", "strict"):
            if fmt.get(key) is not None:
                spec[key] = fmt[key]
        return {"type": "json_schema", "json_schema": spec}
    if kind is None:
        raise missing("text.format.type")
    raise invalid(
        f"Invalid value for 'text.format.type': '{kind}' (use 'text', 'json_object' or 'json_schema').",
        "text.format.type",
    )


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
        raise invalid("Tool choice 'required' must be specified with the 'tools' parameter.", "tool_choice")
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
