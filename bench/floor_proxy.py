"""The floor: the least a Python pass-through proxy can cost, to measure Parley's overhead against.

    python bench/floor_proxy.py --port P --upstream-port U

Raw asyncio streams (on uvloop when installed, as `parley serve` is), no framework, no parsing
beyond HTTP/1.1 framing: each request's bytes go to a kept-alive upstream connection as they
came, and the response's bytes come back as they arrive (a chunked body chunk by chunk, so a
stream's first token is not held back). Bench code only, never the product.

Its server is uvloop's own, which accepts one waiting connection per turn of the loop; in the
burst of 1,000 streams that can hold its last streams back (Parley's server takes every waiting
connection at once: parley/event_loop.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import deque

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _header(head: bytes, name: bytes) -> bytes | None:
    lower = head.lower()
    at = lower.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    return lower[start : lower.index(b"\r\n", start)].strip()


class Floor:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.idle: deque[Conn] = deque()  # kept-alive upstream connections, most recent last

    async def _send(self, request: bytes) -> tuple[Conn, bytes]:
        """Write the request upstream and read the response head, on a kept-alive connection
        when one is idle (and on a fresh one if the upstream had closed it meanwhile)."""
        while self.idle:
            reader, writer = self.idle.pop()
            if reader.at_eof() or writer.is_closing():
                continue
            writer.write(request)
            try:
                return (reader, writer), await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        writer.write(request)
        return (reader, writer), await reader.readuntil(b"\r\n\r\n")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = int(_header(head, b"content-length") or 0)
                request = head + (await reader.readexactly(length) if length else b"")
                (up_reader, up_writer), up_head = await self._send(request)
                if not await self._relay(up_head, up_reader, writer):
                    up_writer.close()  # the client left mid-response: drop the upstream too
                    return
                self.idle.append((up_reader, up_writer))
        finally:
            writer.close()

    async def _relay(self, head: bytes, up: asyncio.StreamReader, client: asyncio.StreamWriter) -> bool:
        """Copy one response; False when the client went away before it ended."""
        if client.is_closing():
            return False
        client.write(head)
        if _header(head, b"transfer-encoding") == b"chunked":
            while True:
                size_line = await up.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                data = size_line + await up.readexactly(size + 2)
                if client.is_closing():
                    return False
                client.write(data)
                try:
                    await client.drain()
                except ConnectionError:
                    return False
                if size == 0:
                    return True
        length = int(_header(head, b"content-length") or 0)
        data = await up.readexactly(length)
        if client.is_closing():
            return False
        client.write(data)
        try:
            await client.drain()
        except ConnectionError:
            return False
        return True


async def main(port: int, upstream_port: int) -> None:
    floor = Floor(upstream_port)
    server = await asyncio.start_server(floor.serve, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    args = ap.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(main(args.port, args.upstream_port))
