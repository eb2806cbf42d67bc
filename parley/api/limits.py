"""Request body size limits, enforced while the body streams in (413 beyond them)."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.api.errors import body_for
from parley.errors import PayloadTooLarge


class BodyLimit:
    def __init__(self, app: ASGIApp, default: int, uploads: int, upload_paths: tuple[str, ...]) -> None:
        self.app = app
        self.default = default
        self.uploads = uploads
        self.upload_paths = upload_paths

    def _limit(self, path: str) -> int:
        return self.uploads if path.startswith(self.upload_paths) else self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self._limit(path)
        error = PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _reject(send, path, error)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise error
            return message

        await self.app(scope, counted, send)


async def _reject(send: Send, path: str, error: PayloadTooLarge) -> None:
    body = orjson.dumps(body_for(path, error))
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
