"""ek-/ak- token checks for the v8 routes."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from parley.api.common import core, request_id
from parley.auth.v8_tokens import V8Identity
from parley.caller import Caller
from parley.errors import Forbidden
from parley.storage.models import Integration


@dataclass(frozen=True)
class V8Caller:
    identity: V8Identity
    integration: Integration
    caller: Caller  # what the core keys usage, limits and metrics on

    @property
    def app_id(self) -> str:
        return self.integration.id

    @property
    def user_id(self) -> str:
        return self.identity.user_id


async def user(request: Request) -> V8Caller:
    identity, integration = await core(request).tokens.verify(request.headers.get("authorization"))
    caller = Caller(
        "integration",
        request_id(request),
        "v8",
        app_id=integration.id,
        user_id=identity.user_id,
        admin=identity.is_admin,
    )
    return V8Caller(identity, integration, caller)


async def admin(request: Request) -> V8Caller:
    caller = await user(request)
    if not caller.identity.is_admin:
        raise Forbidden("unauthorized")
    return caller
