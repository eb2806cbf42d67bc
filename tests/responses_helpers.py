"""Helpers for the /v1/responses tests: an official openai client on Parley, a stored response
read over raw HTTP, and the function tools the upstream double's ``tools`` model calls."""

from __future__ import annotations

from typing import Any

import openai

from tests.conftest import Parley
from tests.upstream_double import TOOL_CALLS


def sdk(parley: Parley, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=parley.url + "/v1", api_key=key or parley.key, max_retries=0)


def stored_response(parley: Parley, response_id: str) -> dict[str, Any] | None:
    """GET /v1/responses/{id}: the stored response, or None while (or once) there is none."""
    with parley.client() as http:
        r = http.get(f"/v1/responses/{response_id}")
    return r.json() if r.status_code == 200 else None


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
