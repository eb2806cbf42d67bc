"""/v1/responses through the official openai client and the OpenAI Agents SDK, against the
upstream double and the built-in model, on both databases: whole and streamed responses,
function-tool round trips continued with previous_response_id, structured output, stored
responses (retrieve, delete, input items and their pages), and refusals that change nothing."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.conftest import cli_json
from tests.upstream_double import TOOL_CALLS, USAGE


def sdk(parley, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=parley.url + "/v1", api_key=key or parley.key, max_retries=0)


def wait_for(check, what: str, seconds: float = 20.0):
    """Poll until ``check()`` returns something truthy (a condition, never a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


FUNCTION_TOOLS = [
    {
        "type": "function",
        "name": name,
        "description": f"the {name} tool",
        "parameters": {"type": "object", "properties": {}, "additionalProperties": True},
        "strict": False,
    }
    for _, name, _ in TOOL_CALLS
]

USAGE_OUT = {
    "input_tokens": USAGE["prompt_tokens"],
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": USAGE["completion_tokens"],
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": USAGE["total_tokens"],
}


def test_create_plain_relays_to_upstream_and_is_stored(parley):
    client = sdk(parley)
    res = client.responses.create(
        model="gpt-4o-mini",
        input="你好",
        instructions="Be brief.",
        temperature=0.3,
        top_p=0.9,
        max_output_tokens=100,
        user="u-1",
        metadata={"topic": "greeting"},
    )
    assert res.id.startswith("resp_") and res.object == "response"
    assert res.status == "completed" and res.completed_at is not None
    assert res.model == "gpt-4o-mini"
    assert res.output_text == "echo: 你好"
    [message] = res.output
    assert message.type == "message" and message.id.startswith("msg_") and message.status == "completed"
    assert message.role == "assistant"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert res.usage.model_dump(exclude_none=True) == USAGE_OUT
    assert res.instructions == "Be brief." and res.temperature == 0.3 and res.top_p == 0.9
    assert res.max_output_tokens == 100 and res.user == "u-1" and res.metadata == {"topic": "greeting"}
    assert res.tools == [] and res.tool_choice == "auto" and res.parallel_tool_calls is True
    assert res.text.format.type == "text" and res.store is True and res.previous_response_id is None

    sent = parley.upstream.rec.last()
    assert sent["model"] == "echo"
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.9 and sent["max_tokens"] == 100
    assert sent["user"] == "u-1"
    assert "metadata" not in sent and "store" not in sent and "input" not in sent

    again = client.responses.retrieve(res.id)
    assert again.model_dump() == res.model_dump()
    items = client.responses.input_items.list(res.id)
    assert [(i.type, i.role, i.content[0].text) for i in items.data] == [("message", "user", "你好")]
    assert items.data[0].id.startswith("msg_")
