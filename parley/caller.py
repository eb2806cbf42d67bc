"""Who is calling: built by each dialect's authentication, carried into the core.

The chat turn, usage records, limits and metrics key everything on a ``Caller``; none of them
knows which wire format the request came in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CallerKind = Literal["gateway", "project", "integration"]


@dataclass(frozen=True, slots=True)
class Caller:
    kind: CallerKind
    request_id: str
    dialect: str  # the wire format: openai, project, v8, anthropic, gemini, responses
    key_id: str | None = None  # the gateway key or project key used
    project_id: str | None = None
    app_id: str | None = None  # the v8 integration
    user_id: str | None = None  # the integration's end user
    admin: bool = False

    @property
    def scopes(self) -> list[tuple[str, str]]:
        """What limits and budgets apply to, most specific last: (scope, id)."""
        if self.kind == "gateway" and self.key_id:
            return [("key", self.key_id)]
        if self.kind == "project" and self.project_id:
            return [("project", self.project_id)]
        if self.kind == "integration" and self.app_id:
            out = [("integration", self.app_id)]
            if self.user_id is not None:
                out.append(("user", f"{self.app_id}/{self.user_id}"))
            return out
        return []
