"""Gateway keys into a ``Caller``: the dependency every gateway dialect authenticates with.

A key may come as ``Authorization: Bearer``, ``x-api-key`` (Anthropic's SDK) or
``x-goog-api-key`` / ``?key=`` (Google's), whatever the dialect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from parley.api.common import request_id
from parley.auth.headers import gateway_key
from parley.caller import Caller
from parley.core import CoreDep


def gateway_caller(dialect: str) -> Callable[[Request, CoreDep], Awaitable[Caller]]:
    async def authenticate(request: Request, core: CoreDep) -> Caller:
        presented = gateway_key(request.headers) or request.query_params.get("key")
        identity = await core.gateway_keys.verify(presented)
        return Caller("gateway", request_id(request), dialect, key_id=identity.id)

    return authenticate


OpenAICaller = Annotated[Caller, Depends(gateway_caller("openai"))]
AnthropicCaller = Annotated[Caller, Depends(gateway_caller("anthropic"))]
GeminiCaller = Annotated[Caller, Depends(gateway_caller("gemini"))]
