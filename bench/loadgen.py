"""A small keep-alive HTTP/1.1 load generator on raw asyncio sockets (on uvloop when installed).

Python clients such as httpx would cost more CPU than the server under test; this one only
writes prepared bytes and reads until the response ends (Content-Length or chunked).
``burst`` opens many streams at once and times each one's first token.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def arun(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on uvloop when it is installed (the cheaper client leaves more CPU to the server)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


@dataclass
class Stats:
    """One run's figures, however measured."""

    p50: float  # ms
    p99: float  # ms
    rps: float
    requests: int
    errors: int
    cpu_us: float = float("nan")  # CPU the serving process used per request, when measured


@dataclass
class Result:
    latencies: list[float]
    elapsed: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def pct(self, p: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else float("nan")

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    def stats(self) -> Stats:
        return Stats(self.p50, self.pct(99), self.rps, len(self.latencies), self.errors)


def request_bytes(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {host}:{port}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                return status
    start = lower.index(b"content-length:") + 15
    length = int(lower[start : lower.index(b"\r\n", start)])
    await reader.readexactly(length)
    return status


async def _worker(host: str, port: int, payload: bytes, stop_at: float, budget: list[int], out: Result) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at and budget[0] > 0:
            budget[0] -= 1
            t0 = time.perf_counter()
            writer.write(payload)
            status = await _read_response(reader)
            if status == 200:
                out.latencies.append(time.perf_counter() - t0)
            else:
                out.errors += 1
    finally:
        writer.close()


async def run(host: str, port: int, payload: bytes, concurrency: int, requests: int, seconds: float) -> Result:
    out = Result([], 0.0, 0)
    budget = [requests]
    started = time.perf_counter()
    await asyncio.gather(*(_worker(host, port, payload, started + seconds, budget, out) for _ in range(concurrency)))
    out.elapsed = time.perf_counter() - started
    return out


@dataclass
class Burst:
    first_token: list[float]  # seconds from connecting to the first `data:` event, per stream
    total: list[float]  # seconds from connecting to the stream's end
    errors: int

    def ttft(self, p: float) -> float:
        xs = sorted(self.first_token)
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else float("nan")


async def _one_stream(host: str, port: int, payload: bytes, out: Burst) -> None:
    t0 = time.perf_counter()
    first = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        out.errors += 1
        return
    try:
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        if int(head[9:12]) != 200 or b"transfer-encoding: chunked" not in head.lower():
            out.errors += 1
            return
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if first is None and b"data:" in data:
                first = time.perf_counter() - t0
            if size == 0:
                break
        if first is None:
            out.errors += 1
            return
        out.first_token.append(first)
        out.total.append(time.perf_counter() - t0)
    except (OSError, asyncio.IncompleteReadError):
        out.errors += 1
    finally:
        writer.close()


async def burst(host: str, port: int, payload: bytes, streams: int) -> Burst:
    """Open ``streams`` streamed requests at once, each on its own connection."""
    out = Burst([], [], 0)
    await asyncio.gather(*(_one_stream(host, port, payload, out) for _ in range(streams)))
    return out
