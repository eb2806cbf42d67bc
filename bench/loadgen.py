"""A small keep-alive HTTP/1.1 load generator on raw asyncio sockets.

Python clients such as httpx would cost more CPU than the server under test; this one only
writes prepared bytes and reads until the response ends (Content-Length or chunked).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass


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
