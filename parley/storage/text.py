"""Making an upstream's words storable on every database.

PostgreSQL cannot hold NUL (U+0000) in text or JSON columns. Requests carrying it are refused
(api/sanitize.py), but a model's reply is whatever the upstream sent: the client receives it
unchanged, and the stored copy drops the NUL characters so that storing it cannot fail.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def storable(value: T) -> T:
    """``value`` with NUL characters removed from every string in it (a copy where it changed)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value  # type: ignore[return-value]
    if isinstance(value, dict):
        return {k: storable(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [storable(v) for v in value]  # type: ignore[return-value]
    return value
