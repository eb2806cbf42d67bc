"""ek-/ak- token checks for the v8 routes."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from parley.api.common import core
from parley.auth.v8_tokens import V8Identity
from parley.errors import Forbidden
from parley.storage.models import Integration


@dataclass(frozen=True)
class Caller:
    identity: V8Identity
    integration: Integration

    @property
    def app_id(self) -> str:
        return self.integration.id

    @property
    def user_id(self) -> str:
        return self.identity.user_id


async def user(request: Request) -> Caller:
    identity, integration = await core(request).tokens.verify(request.headers.get("authorization"))
    return Caller(identity, integration)


async def admin(request: Request) -> Caller:
    caller = await user(request)
    if not caller.identity.is_admin:
        raise Forbidden("unauthorized")
    return caller
