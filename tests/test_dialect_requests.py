"""Anthropic requests read without the request model's validation (``anthropic.plain``) read
exactly as the model reads them: every body ``plain`` takes, the model takes too and
``to_chat`` gives the same from both; every body it refuses still gets the model's 400."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from parley.api.common import validate
from parley.dialects import anthropic
from parley.errors import BadRequest

TOOL = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {}}}
BASE: dict[str, Any] = {
    "model": "m",
    "max_tokens": 64,
    "stream": True,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {"role": "user", "content": "Hello", "extra": 1},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "ok"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "22C"}]},
    ],
    "temperature": 0.5,
    "top_p": 1,
    "top_k": 5,
    "stop_sequences": ["END"],
    "tools": [TOOL],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "metadata": {"user_id": "u1"},
    "output_config": {"effort": "max"},
    "service_tier": "auto",
}
ODD: list[Any] = [None, "", "x", 0, -1, 1, 2, 0.5, 1.5, True, False, [], [{}], ["s"], [1], {}, {"type": "auto"}]
# Where each odd value is put: top-level fields, and fields inside messages, tools and tool_choice.
PLACES: list[tuple[Any, ...]] = [
    *((k,) for k in (*BASE, "thinking")),
    ("messages", 0, "role"),
    ("messages", 0, "content"),
    ("messages", 1, "content", 0),
    ("messages", 2),
    ("system", 0),
    ("tools", 0, "name"),
    ("tools", 0, "description"),
    ("tools", 0, "input_schema"),
    ("tools", 0, "type"),
    ("tools", 0),
    ("tool_choice", "type"),
    ("tool_choice", "name"),
    ("tool_choice", "disable_parallel_tool_use"),
    ("stop_sequences", 0),
]


def put(body: dict[str, Any], place: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    target = out
    for step in place[:-1]:
        target = target[step]
    target[place[-1]] = value
    return out


def bodies() -> list[dict[str, Any]]:
    out = [BASE, {k: v for k, v in BASE.items() if k != "stream"}]
    out += [put(BASE, place, value) for place in PLACES for value in ODD]
    out += [{k: v for k, v in BASE.items() if k != name} for name in ("model", "max_tokens", "messages")]
    out += [put(BASE, ("tools", 0, "name"), "n" * 128), put(BASE, ("tools", 0, "name"), "n" * 129)]
    out += [put(BASE, ("tool_choice",), {"type": "tool", "name": "get_weather"})]
    return out


def read(body: dict[str, Any]) -> Any:
    """What ``to_chat`` gives, as the bytes sent upstream (1 and 1.0 differ there), or its 400."""
    try:
        return orjson.dumps(anthropic.to_chat(body))
    except BadRequest as exc:
        return ("400", exc.message, exc.param)


@pytest.mark.parametrize("counting", [False, True])
def test_what_plain_takes_reads_as_the_model_reads_it(counting: bool) -> None:
    model = anthropic.CountTokensRequest if counting else anthropic.MessagesRequest
    taken = refused = 0
    for body in bodies():
        if not anthropic.plain(body, counting=counting):
            refused += 1
            continue
        taken += 1
        validated = validate(model, body)  # the model takes it too (a 400 here fails the test)
        assert read(body) == read(validated.model_dump()), body
    assert taken > 50 and refused > 50  # both ways are exercised


def test_values_the_model_would_convert_go_through_the_model() -> None:
    for field, value in (("max_tokens", "64"), ("max_tokens", 64.0), ("temperature", True), ("stream", "true")):
        body = {**BASE, field: value}
        assert not anthropic.plain(body)
    assert (
        anthropic.to_chat(validate(anthropic.MessagesRequest, {**BASE, "max_tokens": "64"}).model_dump())[1][
            "max_tokens"
        ]
        == 64
    )
