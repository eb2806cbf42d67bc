"""Request body size limits, enforced while the body streams in (413 beyond them)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Message, Receive, Scope, Send

from parley.api.errors import send_error
from parley.errors import PayloadTooLarge


@dataclass(frozen=True)
class BodyLimits:
    default: int
    uploads: int  # for paths under ``upload_paths``
    upload_paths: tuple[str, ...]

    def of(self, path: str) -> int:
        return self.uploads if path.startswith(self.upload_paths) else self.default


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")


def announced_too_large(scope: Scope, limit: int) -> bool:
    """The request's ``content-length`` is past ``limit``: it can be refused before it is read."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.isdigit() and int(value) > limit
    return False


def counted(receive: Receive, limit: int) -> Receive:
    """``receive``, raising 413 once more than ``limit`` bytes of body have come (a chunked body,
    or one longer than it announced)."""
    seen = 0

    async def receive_counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large(limit)
        return message

    return receive_counted


async def refuse(send: Send, path: str, limit: int) -> None:
    """The 413 for a body announced too large; the connection closes, as the body is not read."""
    await send_error(send, path, too_large(limit), close=True)
