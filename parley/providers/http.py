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
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from parley.config import Timeouts
from parley.errors import ParleyError, UpstreamError, UpstreamTimeout
from parley.providers.failures import failure, retryable

Body = dict[str, Any]
# (HTTP status, response body, response headers) -> the error to raise for it.
ErrorFor = Callable[[int, bytes, Mapping[str, str]], ParleyError]

MAX_LINE = 4 * 1024 * 1024  # an SSE line (one chunk) may be this long
# Idle pooled connections are dropped after this many seconds: below the idle timeouts servers
# commonly close them at (uvicorn's and Node's 5 s), so a connection the upstream has closed is
# rarely picked. When one still is (the close crossing the request), see ``UpstreamHTTP.open``.
KEEPALIVE = 4.0


class StreamDecoder(Protocol):
    """A vendor's stream, one server-sent event at a time, as OpenAI chunks."""

    @property
    def done(self) -> bool:
        """The vendor said the stream is complete: stop reading."""
        ...

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
                connector=aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=KEEPALIVE),
                read_bufsize=MAX_LINE,
                max_line_size=MAX_LINE,
                max_field_size=MAX_LINE,
                skip_auto_headers=("user-agent",),
                # One session serves every caller: a cookie an upstream sets for one request
                # must not go out with the next caller's.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def open(self, url: str, body: Body) -> aiohttp.ClientResponse:
        """POST ``body``; return the response once its headers say it was accepted."""
        # orjson hands back its 4 KB working buffer however short the JSON, and the request
        # holds its body until the upstream answers: with a thousand streams opening, 4 MB.
        data = bytes(memoryview(orjson.dumps(body)))
        try:
            async with asyncio.timeout(self.timeouts.first_byte):
                try:
                    response = await self._client().post(url, data=data)
                except aiohttp.ClientConnectorError:
                    raise  # no connection at all: the deployment's failure (routing retries it)
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                    # The connection closed before any answer: most likely a pooled one the
                    # upstream closed while idle, as the request went out. Once more, on a new one.
                    response = await self._client().post(url, data=data)
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
            if response.content.is_eof():
                # The whole body came with the head (a short answer mostly does): nothing to wait
                # for, so no deadline to set (setting and clearing one is ~7 us of a request's CPU).
                raw = await response.read()
            else:
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

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncGenerator[list[tuple[str, bytes]], None]:
        """Server-sent events as (event name or "", data), in batches: every event already
        received when the reader gets to run comes out together (one write to the client for
        them, not one each). Comments and ids are skipped.

        Lines outside SSE's framing are kept as one event's data too: Gemini sends an error
        that happens mid-stream as bare JSON lines.
        """
        events = _SSEParser()
        try:
            while block := await response.content.readany():
                if batch := events.feed(block):
                    yield batch
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"Upstream provider {self.name!r} dropped the connection mid-stream") from exc
        except ValueError as exc:  # a line over MAX_LINE
            raise UpstreamError(f"Upstream provider {self.name!r} sent an event over {MAX_LINE} bytes") from exc
        if batch := events.end():  # the body ended without the blank line that closes an event
            yield batch

    def stream(self, response: aiohttp.ClientResponse, decoder: StreamDecoder) -> Chunks:
        """The decoder's chunks, each as soon as its event has arrived (see ``Chunks``)."""
        return Chunks(self._batches(response, decoder))

    async def _batches(
        self, response: aiohttp.ClientResponse, decoder: StreamDecoder
    ) -> AsyncGenerator[list[Body], None]:
        finished = False
        events = self._events(response)
        try:
            async for batch in events:
                chunks: list[Body] = []
                failed: ParleyError | None = None
                for event, data in batch:
                    try:
                        chunks.extend(decoder.feed(event, data))
                    except ParleyError as exc:
                        failed = exc  # the chunks before it still go out first
                        break
                    if decoder.done:
                        break
                if chunks:
                    yield chunks
                if failed is not None:
                    raise failed
                if decoder.done:
                    break
            finished = True  # the vendor said so, or the body ended: what came is all there is
            if rest := list(decoder.end()):
                yield rest
        finally:
            await events.aclose()
            # Closing (not releasing) an unfinished response drops the connection: the upstream
            # sees the client go and stops generating.
            response.release() if finished else response.close()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _SSEParser:
    """Bytes as they arrive in, complete events out; what is not complete yet waits for more.

    One pass per read: the bytes are cut at blank lines, and an event of the usual shapes
    (``event: NAME\ndata: JSON``, Anthropic's; ``data: JSON``, OpenAI's and Gemini's) is taken
    apart with two slices rather than a line at a time. Anything else (comments, ids, several
    data lines, CRLF line ends, bare lines) goes through the line rules of ``_line``, which
    the fast shapes give the same events as.
    """

    def __init__(self) -> None:
        self.partial: list[bytes] = []  # the start of an event (or line) whose end has not come yet
        self.line_size = 0  # how long the unfinished line at the end of ``partial`` is so far
        self.event = ""
        self.data: list[bytes] = []
        self.bare: list[bytes] = []

    def feed(self, block: bytes) -> list[tuple[str, bytes]]:
        if b"\n" not in block:
            self._hold(block, len(block), continued=True)
            return []
        if self.partial:  # (joined once a line's end has come: a long line costs no quadratic copying)
            block = b"".join(self.partial) + block
            self.partial, self.line_size = [], 0
        out: list[tuple[str, bytes]] = []
        if b"\r" in block:  # CRLF line ends: the line rules, a line at a time
            lines = block.split(b"\n")
            if rest := lines.pop():
                self._hold(rest, len(rest), continued=False)
            for line in lines:
                self._line(line.rstrip(b"\r"), out)
            return out
        pieces = block.split(b"\n\n")
        if rest := pieces.pop():  # an event not ended yet: kept whole, read once it has ended
            self._hold(rest, len(rest) - rest.rfind(b"\n") - 1, continued=False)
        # Lines of an event begun before (read by the line rules) make the first piece its end.
        begun = bool(self.event or self.data or self.bare)
        for piece in pieces:
            if not begun:
                if piece[:7] == b"event: ":
                    nl = piece.find(b"\n")
                    if nl > 0 and piece[nl + 1 : nl + 7] == b"data: " and piece.find(b"\n", nl + 1) < 0:
                        out.append((piece[7:nl].strip().decode("utf-8", "replace"), piece[nl + 7 :]))
                        continue
                elif piece[:6] == b"data: " and b"\n" not in piece:
                    out.append(("", piece[6:]))
                    continue
            begun = False
            for line in piece.split(b"\n"):
                self._line(line, out)
            self._line(b"", out)  # the blank line that ended it
        return out

    def _hold(self, part: bytes, line_size: int, continued: bool) -> None:
        self.line_size = self.line_size + line_size if continued else line_size
        if self.line_size > MAX_LINE:
            raise ValueError("line too long")
        self.partial.append(part)

    def end(self) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        if self.partial:
            for line in b"".join(self.partial).split(b"\n"):
                self._line(line.rstrip(b"\r"), out)
            self.partial, self.line_size = [], 0
        if self.data or self.bare:
            out.append((self.event, b"\n".join(self.data or self.bare)))
        return out

    def _line(self, line: bytes, out: list[tuple[str, bytes]]) -> None:
        if not line:
            if self.data or self.bare:
                out.append((self.event, b"\n".join(self.data or self.bare)))
            self.event, self.data, self.bare = "", [], []
        elif line.startswith(b"data:"):
            value = line[5:]
            self.data.append(value[1:] if value[:1] == b" " else value)
        elif line.startswith(b"event:"):
            self.event = line[6:].strip().decode("utf-8", "replace")
        elif not line.startswith((b":", b"id:", b"retry:")):
            self.bare.append(line)


class Chunks:
    """A provider's stream of OpenAI chunks. Iterated, it gives them one at a time; the chat
    core reads ``batches()`` instead: the chunks of every event that had arrived together."""

    def __init__(self, batches: AsyncGenerator[list[Body], None]) -> None:
        self._batches = batches
        self._ready: list[Body] = []

    def batches(self) -> AsyncGenerator[list[Body], None]:
        return self._batches

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> Body:
        while not self._ready:
            self._ready = list(reversed(await anext(self._batches)))
        return self._ready.pop()

    async def aclose(self) -> None:
        await self._batches.aclose()


def json_event(provider: str, data: bytes) -> Any:
    """One event's JSON payload; a malformed one is the upstream's fault."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"Upstream provider {provider!r} sent a malformed event") from exc


class Translator(Protocol):
    """A vendor's stream events (parsed JSON), fed one at a time, as OpenAI chunks."""

    done: bool

    def feed(self, event: Body) -> list[Body]: ...

    def end(self) -> list[Body]: ...


class JsonEvents:
    """A ``StreamDecoder`` for vendors whose events are JSON: an event ``error_of`` recognises
    as an error is raised as the failure it stands for, the rest go to the translator."""

    def __init__(
        self, provider: str, translator: Translator, error_of: Callable[[str, Any], tuple[int, str] | None]
    ) -> None:
        self.provider = provider
        self.translator = translator
        self.error_of = error_of

    @property
    def done(self) -> bool:
        return self.translator.done

    def feed(self, event: str, data: bytes) -> Iterable[Body]:
        payload = json_event(self.provider, data)
        if (err := self.error_of(event, payload)) is not None:
            raise failure(self.provider, *err)
        return self.translator.feed(payload) if isinstance(payload, dict) else ()

    def end(self) -> Iterable[Body]:
        return self.translator.end()


def error_text(status: int, text: bytes, message_of: Callable[[Any], str | None]) -> str:
    """A vendor error body's message, else its first bytes: what the log and caller see."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        body = None
    return message_of(body) or text[:300].decode("utf-8", "replace").strip() or f"HTTP {status}"
