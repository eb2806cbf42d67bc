"""Where a client may put its key: OpenAI, Anthropic and Google style headers."""

from __future__ import annotations

from starlette.datastructures import Headers


def bearer_or_bare(value: str | None) -> str | None:
    """``Bearer KEY`` or a bare ``KEY`` (the project API accepts both: see docs/protocol.md)."""
    if not value:
        return None
    value = value.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None


def gateway_key(headers: Headers) -> str | None:
    return (
        bearer_or_bare(headers.get("authorization"))
        or (headers.get("x-api-key") or "").strip()
        or (headers.get("x-goog-api-key") or "").strip()
        or None
    )
