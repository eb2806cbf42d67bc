"""The event loop a Parley server runs on: uvloop, taking every waiting connection at once.

libuv (under uvloop, since its 1.45) accepts one connection each time the listening socket is
found readable, that is one per turn of the loop. On a busy loop a turn takes milliseconds
(each turn serves every stream with a chunk ready), so a burst of a thousand new clients
queued in the kernel for seconds while the loop took them one turn at a time: a stream opened
with 1,000 others waited ~2.5 s for its first token where the upstream answered in 0.1 s.

``Loop.create_server`` keeps uvloop's server (its accept still wakes the loop, and it still
owns the listening socket), and each time it accepts one connection the rest of the queue is
taken too, up to ``ACCEPT_BATCH``, and handed to ``connect_accepted_socket``: the same
transports and protocols, made in the same turn.

Several workers must not drain one shared queue: the first to wake would take a whole batch
of new connections from the others (two workers then served no more than one). With
``--workers`` on Linux, `parley serve` binds the port with SO_REUSEPORT and never listens on
that socket (``parley.serving``); each worker's server listens on a socket of its own bound
beside it, so each has its own queue, and the kernel spreads new connections evenly over them.
Elsewhere several workers share one socket and run on plain uvloop, one accept per turn.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Any, cast

import uvloop

ACCEPT_BATCH = 128  # taken at most per accept of uvloop's: the same turn serves the open streams too


class Loop(uvloop.Loop):
    def __init__(self) -> None:
        super().__init__()
        self._opening: set[asyncio.Task[Any]] = set()  # held until each has its transport

    async def create_server(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], *args: Any, **kwargs: Any
    ) -> asyncio.AbstractServer:
        if kwargs.get("ssl") is not None:  # TLS handshakes stay with uvloop's own accept
            return await super().create_server(protocol_factory, *args, **kwargs)
        shared = kwargs.get("sock")
        if shared is not None and shared.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
            kwargs["sock"] = own_listener(shared)
        listeners: list[socket.socket] = []

        def accepted() -> asyncio.BaseProtocol:
            # libuv accepted one connection: the others waiting are taken in the same turn.
            for listener in listeners:
                self._take_waiting(listener, protocol_factory)
            return protocol_factory()

        server = cast(asyncio.Server, await super().create_server(accepted, *args, **kwargs))
        for pseudo in server.sockets:
            # Its own descriptor of the same listening socket (accepting from either takes
            # from the one queue); closed with the server.
            listener = socket.socket(pseudo.family, pseudo.type, fileno=os.dup(pseudo.fileno()))
            listener.setblocking(False)
            listeners.append(listener)
        return _Server(server, listeners)

    def _take_waiting(self, listener: socket.socket, protocol_factory: Callable[[], asyncio.BaseProtocol]) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # the queue is empty
            except OSError:  # out of descriptors, a connection reset while queued, the server closed
                return  # uvloop's own accept meets the same condition and handles it
            # libuv makes it non-blocking and sets TCP_NODELAY as on the ones it accepts itself.
            task = self.create_task(self.connect_accepted_socket(protocol_factory, conn))
            self._opening.add(task)
            task.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Task[Any]) -> None:
        self._opening.discard(task)
        if not task.cancelled():
            task.exception()  # a connection that failed as it opened: uvloop has closed it


def own_listener(shared: socket.socket) -> socket.socket:
    """A socket of this worker's own, bound with SO_REUSEPORT to the address of ``shared`` (the
    port `parley serve` bound for its workers): listening, it gets its share of new connections."""
    own = socket.socket(shared.family, shared.type)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    own.bind(shared.getsockname())
    return own


class _Server(asyncio.AbstractServer):
    """uvloop's server, and the extra descriptors of its listening sockets, closed together."""

    def __init__(self, server: asyncio.Server, listeners: list[socket.socket]) -> None:
        self._server = server
        self._listeners = listeners

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return self._server.sockets

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self._server.close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._server.get_loop()

    def is_serving(self) -> bool:
        return self._server.is_serving()

    async def start_serving(self) -> None:
        await self._server.start_serving()

    async def serve_forever(self) -> None:
        await self._server.serve_forever()

    async def wait_closed(self) -> None:
        await self._server.wait_closed()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's loop factory (``loop="parley.event_loop:new_event_loop"``)."""
    return Loop()
