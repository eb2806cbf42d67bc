"""The stack the `type: anthropic` provider tests run against: the Anthropic double, and a
Parley whose provider points at it with a model for each of the double's behaviours; and the
function tools those tests send."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.anthropic_double import API_KEY, Recorder, build
from tests.vendor_stack import Stack, vendor_stack

MODELS = [
    "claude-text",
    "claude-tools",
    "claude-thinking",
    "claude-max-tokens",
    "claude-stop-sequence",
    "claude-refusal",
    "claude-400",
    "claude-401",
    "claude-403",
    "claude-404",
    "claude-429",
    "claude-500",
    "claude-529",
    "claude-midstream",
    "claude-hang",
    "claude-endless",
    "claude-split",
    "claude-drop",
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather at a place",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
        },
    },
]


@contextmanager
def claude_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The Anthropic double and a Parley in front of it, as provider `claude`."""
    rec = Recorder()
    provider = {"name": "claude", "type": "anthropic", "api_key": API_KEY}
    models = [{"name": "sonnet", "provider": "claude", "upstream_model": "claude-text"}]
    models += [{"name": m, "provider": "claude"} for m in MODELS]
    with vendor_stack(tmp_path_factory.mktemp("anthropic"), build(rec), rec, provider, models) as stack:
        yield stack
