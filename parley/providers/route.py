"""One deployment of a public model: which provider serves it, under which upstream name."""

from __future__ import annotations

from dataclasses import dataclass

from parley.config import Timeouts
from parley.providers.base import Provider


@dataclass(frozen=True, eq=False)
class Route:
    public_name: str
    upstream_model: str
    provider: Provider
    kind: str
    owned_by: str
    timeouts: Timeouts
    deployment: str  # "provider/upstream_model" (numbered when the same pair appears twice)
