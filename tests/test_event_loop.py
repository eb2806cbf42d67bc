"""The server's event loop takes every waiting connection in one turn, and closes cleanly."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
import uvicorn
import uvloop

from parley.event_loop import ACCEPT_BATCH, Loop, new_event_loop
from parley.serving import event_loop

WAITING = 50


def _serve_waiting(loop_factory: Callable[[], asyncio.AbstractEventLoop], turns: int) -> int:
    """Connections made after ``turns`` turns of a loop whose server had WAITING of them queued."""

    async def main() -> int:
        made: list[asyncio.BaseTransport] = []

        class Count(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.append(transport)

        loop = asyncio.get_running_loop()
        server = await loop.create_server(Count, "127.0.0.1", 0, backlog=256)
        port = server.sockets[0].getsockname()[1]
        # Blocking connects return once the kernel has queued each connection for accepting.
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(WAITING)]
        try:
            for _ in range(turns):
                await asyncio.sleep(0)
            return len(made)
        finally:
            for c in clients:
                c.close()
            for t in made:
                t.close()
            server.close()
            await server.wait_closed()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def test_every_waiting_connection_is_taken_in_one_turn() -> None:
    assert WAITING < ACCEPT_BATCH
    # Accepted in the first turn, transports opened in the second, protocols told in the third.
    assert _serve_waiting(new_event_loop, turns=4) == WAITING
    # uvloop's own server takes one per turn: what the loop above changes.
    assert _serve_waiting(uvloop.new_event_loop, turns=4) < 10


def test_a_closed_server_stops_listening() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        socket.create_connection(("127.0.0.1", port)).close()
        await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        # No second descriptor keeps the listening socket open after the server is closed.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port))

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())


def test_one_worker_runs_on_parleys_loop_and_several_on_uvloops() -> None:
    def made_by(workers: int) -> type:
        factory = uvicorn.Config("parley.asgi:app", loop=event_loop(workers)).get_loop_factory()
        assert factory is not None
        loop = factory()
        try:
            return type(loop)
        finally:
            loop.close()

    assert made_by(1) is Loop
    # Workers sharing a listening socket take one connection per turn each, which spreads them.
    assert made_by(2) is uvloop.Loop
