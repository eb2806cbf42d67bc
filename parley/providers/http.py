"""The HTTP side every network provider shares: one pooled client per provider, deadlines,
server-sent events, and dropping the connection when the caller goes away.

One pooled keep-alive aiohttp session per provider. aiohttp rather than httpx here because
httpcore's connection pool costs O(connections) per request: at 64 concurrent requests it
took most of a core (measured with bench/gateway.py). The only timeout set on the session is
``connect``; first byte, idle gaps and the total are enforced by the chat core
(chat/relay.py), which also covers an upstream that trickles or stays silent.

Each vendor brings two small things: how to read its error bodies (``ErrorFor``) and how to
turn its events into OpenAI chunks (a ``StreamDecoder``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from parley.config import Timeouts
from parley.errors import ParleyError, UpstreamError, UpstreamTimeout

Body = dict[str, Any]
# (HTTP status, response body, response headers) -> the error to raise for it.
ErrorFor = Callable[[int, bytes, Mapping[str, str]], ParleyError]

MAX_LINE = 4 * 1024 * 1024  # an SSE line (one chunk) may be this long


def retryable(exc: ParleyError) -> ParleyError:
    """Mark a failure that another attempt (or another deployment) may well not hit."""
    exc.retryable = True  # type: ignore[attr-defined]
    return exc


class StreamDecoder(Protocol):
    """A vendor's stream, one server-sent event at a time, as OpenAI chunks."""

    done: bool  # the vendor said the stream is complete: stop reading

    def feed(self, event: str, data: bytes) -> Iterable[Body]: ...

    def end(self) -> Iterable[Body]:
        """What the end of the body still yields (or raises, for a stream cut short)."""
        ...


class UpstreamHTTP:
    def __init__(
        self, name: str, timeouts: Timeouts, headers: Mapping[str, str], max_connections: int, error_for: ErrorFor
    ) -> None:
        self.name = name
        self.timeouts = timeouts
        self.headers = {"content-type": "application/json", **headers}
        self.max_connections = max_connections
        self.error_for = error_for
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running event loop that will own it.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect),
                connector=aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=60),
                read_bufsize=MAX_LINE,
                max_line_size=MAX_LINE,
                max_field_size=MAX_LINE,
                skip_auto_headers=("user-agent",),
            )
        return self._session

    async def open(self, url: str, body: Body) -> aiohttp.ClientResponse:
        """POST ``body``; return the response once its headers say it was accepted."""
        try:
            async with asyncio.timeout(self.timeouts.first_byte):
                response = await self._client().post(url, data=orjson.dumps(body))
        except TimeoutError as exc:
            raise retryable(
                UpstreamTimeout(f"Upstream provider {self.name!r} sent nothing within {self.timeouts.first_byte:g}s")
            ) from exc
        except aiohttp.ClientError as exc:
            raise retryable(
                UpstreamError(f"Upstream provider {self.name!r} is unreachable: {type(exc).__name__}")
            ) from exc
        if response.status >= 400:
            try:
                text = await response.read()
            except aiohttp.ClientError:
                text = b""
            finally:
                response.release()
            raise self.error_for(response.status, text, response.headers)
        return response

    async def read_json(self, url: str, body: Body) -> Body:
        response = await self.open(url, body)
        try:
            async with asyncio.timeout(self.timeouts.total):
                raw = await response.read()
        except TimeoutError as exc:
            response.close()
            raise UpstreamTimeout(
                f"Upstream provider {self.name!r} did not finish within {self.timeouts.total:g}s"
            ) from exc
        except aiohttp.ClientError as exc:
            response.close()
            raise UpstreamError(f"Upstream provider {self.name!r} dropped the connection") from exc
        response.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"Upstream provider {self.name!r} sent a body that is not JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamError(f"Upstream provider {self.name!r} sent an unexpected body")
        return data

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncGenerator[tuple[str, bytes], None]:
        """Server-sent events as (event name or "", data); comments and ids are skipped."""
        event, data = "", list[bytes]()
        try:
            async for raw in response.content:
                line = raw.rstrip(b"\r\n")
                if not line:
                    if data:
                        yield event, b"\n".join(data)
                    event, data = "", list[bytes]()
                elif line.startswith(b"data:"):
                    value = line[5:]
                    data.append(value[1:] if value[:1] == b" " else value)
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode("utf-8", "replace")
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a line over MAX_LINE
            raise UpstreamError(f"Upstream provider {self.name!r} dropped the connection mid-stream") from exc
        if data:  # the body ended without the blank line that closes an event
            yield event, b"\n".join(data)

    async def stream(self, response: aiohttp.ClientResponse, decoder: StreamDecoder) -> AsyncIterator[Body]:
        """The decoder's chunks, each yielded as soon as its event has arrived."""
        finished = False
        events = self._events(response)
        try:
            async for event, data in events:
                for chunk in decoder.feed(event, data):
                    yield chunk
                if decoder.done:
                    break
            finished = True  # the vendor said so, or the body ended: what came is all there is
            for chunk in decoder.end():
                yield chunk
        finally:
            await events.aclose()
            # Closing (not releasing) an unfinished response drops the connection: the upstream
            # sees the client go and stops generating.
            response.release() if finished else response.close()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def json_event(provider: str, data: bytes) -> Any:
    """One event's JSON payload; a malformed one is the upstream's fault."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"Upstream provider {provider!r} sent a malformed event") from exc
