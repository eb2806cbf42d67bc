"""A vendor's event stream read a buffered read at a time: each read takes every byte the
connection holds and parses the events in them in one pass (wire/sse.py).

The shared reader (providers/http.py) awaits one line at a time, which costs more than
translating an event when events are several lines each (Anthropic's are three: ``event:``,
``data:`` and the blank line). Deadlines stay the chat core's (chat/relay.py), as there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from parley.errors import UpstreamError
from parley.providers.base import Body
from parley.providers.http import MAX_LINE, StreamDecoder
from parley.wire.sse import EventParser


async def stream(provider: str, response: aiohttp.ClientResponse, decoder: StreamDecoder) -> AsyncIterator[Body]:
    """The decoder's chunks, each yielded as soon as its event has arrived."""
    parser = EventParser(MAX_LINE)
    finished = False
    try:
        while not decoder.done:
            try:
                data = await response.content.readany()
                events = parser.feed(data) if data else parser.end()
            except (aiohttp.ClientError, ValueError) as exc:  # ValueError: an event over MAX_LINE
                raise UpstreamError(f"Upstream provider {provider!r} dropped the connection mid-stream") from exc
            for event, payload in events:
                for chunk in decoder.feed(event, payload):
                    yield chunk
                if decoder.done:
                    break
            if not data:
                break
        finished = True  # the vendor said so, or the body ended: what came is all there is
        for chunk in decoder.end():
            yield chunk
    finally:
        # Closing (not releasing) an unfinished response drops the connection: the upstream
        # sees the client go and stops generating.
        response.release() if finished else response.close()
