"""The HTTP/1.1 protocol Parley serves with: uvicorn's, each whole response sent in one write."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_SIZED = b"\r\ncontent-length: "  # uvicorn writes header names in lower case


class _OneWrite:
    """A connection's transport that sends a response's head together with its body.

    uvicorn writes the status line and headers, then the body, each in its own send: two
    system calls (and two TCP segments) for every JSON answer, about a fifth of a whole request's
    time. A head that announces a ``content-length`` is held here until the next write, the body,
    and both go out in one. Chunked (streamed) heads and 1xx answers go out at once, and anything
    held is sent before the connection closes or the response is complete (HEAD has no body).
    """

    __slots__ = ("_transport", "_head")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            data = head + data
        elif data.startswith(b"HTTP/1.1 ") and data[9] != 0x31 and data.endswith(b"\r\n\r\n") and _SIZED in data:
            self._head = data
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # pause_reading, get_extra_info, set_protocol…
        return getattr(self._transport, name)


class Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, each response's head and body in one write (``_OneWrite``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, _OneWrite(transport)))

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()
