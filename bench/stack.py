"""What the gateway benchmarks run against, each its own process on a free loopback port: the
instant upstream, the floor proxy in front of it, and `parley serve` with a fresh SQLite
database and a gateway key.

Parley routes `gpt-4o-mini` to the upstream's instant answers, `long` to its instant 50-chunk
stream and `slow` to its slow stream; `claude-bench` goes to the same upstream as an Anthropic
provider (its /v1/messages stream).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import scratch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


@dataclass
class Stack:
    upstream_port: int
    parley_port: int
    key: str
    parley_pid: int
    floor_port: int
    work: Path  # holds the database, the config and parley.log (its stderr)
    floor_pid: int = 0
    upstream_pid: int = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the process serving {url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes (all their threads) have used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def worker_pids(pid: int) -> list[int]:
    """The processes that serve requests: `pid` itself with one worker, else its children (the
    workers, and multiprocessing's small resource tracker)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids or [pid]


# A key's limits that never refuse in a benchmark (`parley keys create` flags), by name.
LIMIT_FLAGS = {
    "rpm": ("--rpm", "1000000000"),
    "tpm": ("--tpm", "1000000000000"),
    "budget": ("--budget-usd", "1000000"),
    "streams": ("--max-streams", "1000000"),
}
LIMITS = tuple(LIMIT_FLAGS)


def limit_flags(limited: bool | Sequence[str]) -> list[str]:
    names = LIMITS if limited is True else limited or ()
    return [flag for name in names for flag in LIMIT_FLAGS[name]]


@contextmanager
def running(
    workers: int = 1,
    server: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    root: Path = ROOT,
    limited: bool | Sequence[str] = False,
) -> Iterator[Stack]:
    """``server`` replaces the `parley serve` command (a profiling wrapper, say); it gets the
    port appended and PARLEY_CONFIG in its environment. ``root``: the checkout whose `parley`
    runs (bench/ab.py compares two). ``limited``: the key has an rpm, tpm, concurrent-stream
    limit and daily budget (or the ones of ``LIMIT_FLAGS`` named), each high enough never to
    refuse, so every request goes through the whole admission and accounting."""
    work = scratch.folder("parley-bench-")
    up_port, parley_port, floor_port = free_port(), free_port(), free_port()
    benv = {**os.environ, "PYTHONPATH": str(BENCH)}
    # A long keep-alive so no idle pooled connection is closed under a client between runs.
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "instant_upstream:app", "--port", str(up_port), "--log-level", "warning",
         "--no-access-log", "--timeout-keep-alive", "600", "--backlog", "4096"],
        env=benv, cwd=BENCH,
    )  # fmt: skip
    floor = subprocess.Popen(
        [sys.executable, str(BENCH / "floor_proxy.py"), "--port", str(floor_port), "--upstream-port", str(up_port)],
        env=benv,
    )  # fmt: skip
    config = work / "parley.yaml"
    config.write_text(json.dumps({
        "database_url": f"sqlite+aiosqlite:///{work}/parley.db",
        "log_level": "warning",
        "providers": [{"name": "instant", "type": "openai", "base_url": f"http://127.0.0.1:{up_port}/v1",
                       "api_key": "sk-bench"},
                      {"name": "instant-anthropic", "type": "anthropic", "base_url": f"http://127.0.0.1:{up_port}",
                       "api_key": "x"}],
        "models": [{"name": "gpt-4o-mini", "provider": "instant", "upstream_model": "bench"},
                   {"name": "slow", "provider": "instant", "upstream_model": "slow"},
                   {"name": "long", "provider": "instant", "upstream_model": "long"},
                   {"name": "claude-bench", "provider": "instant-anthropic", "upstream_model": "bench"}],
        "secret_key_file": str(work / "secret.key"),
    }))  # fmt: skip
    penv = {**os.environ, **(env or {}), "PARLEY_CONFIG": str(config)}
    made = subprocess.run([sys.executable, "-m", "parley", "keys", "create", "--name", "bench", "--json",
                           *limit_flags(limited)], env=penv, capture_output=True, text=True, check=True,
                          cwd=root)  # fmt: skip
    command = list(server or [sys.executable, "-m", "parley", "serve", "--workers", str(workers), "--port"])
    # Its log goes to a file: a load generator that stops mid-request makes it log each one.
    with open(work / "parley.log", "wb") as log:
        parley = subprocess.Popen([*command, str(parley_port)], env=penv, cwd=root, stderr=log)
    procs = (parley, floor, upstream)
    try:
        wait_up(f"http://127.0.0.1:{up_port}/", upstream)
        wait_port(floor_port)
        wait_up(f"http://127.0.0.1:{parley_port}/healthz", parley)
        key = json.loads(made.stdout)["key"]
        yield Stack(up_port, parley_port, key, parley.pid, floor_port, work, floor.pid, upstream.pid)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
