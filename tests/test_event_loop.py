"""The server's event loop takes every waiting connection in one turn, and closes cleanly."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop

from parley.event_loop import ACCEPT_BATCH, new_event_loop
from parley.serving import workers_socket

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


_WORKER = """
import asyncio, socket, sys
from parley.event_loop import new_event_loop
shared = socket.socket(fileno=int(sys.argv[1]))
made = 0
class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        global made
        made += 1
        self.transport = transport
    def data_received(self, data):
        self.transport.write(b"k")
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(Answer, sock=shared, backlog=512)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # until the test has had its answers
    print(made, flush=True)
with asyncio.Runner(loop_factory=new_event_loop) as runner:
    runner.run(main())
"""


def _listening(port: int) -> int:
    """Listening TCP sockets on ``port`` (IPv4), as the kernel lists them."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")


@pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT spreads connections on Linux")
def test_workers_each_listen_on_their_own_socket_and_share_the_connections() -> None:
    shared = workers_socket("127.0.0.1", 0)
    port = shared.getsockname()[1]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(shared.fileno())],
            pass_fds=[shared.fileno()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    clients: list[socket.socket] = []
    try:
        for w in workers:
            assert w.stdout is not None and w.stdout.readline().strip() == "ready"
        assert _listening(port) == 2  # one listening socket per worker, none shared
        clients += [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(200)]
        for c in clients:
            c.sendall(b"x")
        assert all(c.recv(1) == b"k" for c in clients)  # each one served by a worker
        counts = [int(w.communicate("done\n", timeout=30)[0]) for w in workers]
    finally:
        for c in clients:
            c.close()
        for w in workers:
            w.kill()
        shared.close()
    assert sum(counts) == 200
    # The kernel spreads them by address hash: far from all on one worker (even split ± 60).
    assert min(counts) >= 40, counts


def test_a_port_in_use_is_refused_to_the_workers() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            workers_socket("127.0.0.1", taken.getsockname()[1])
