"""What the gateway benchmarks run against: the instant upstream and `parley serve` (one worker),
each its own process, on free loopback ports, with a fresh SQLite database and a gateway key."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stack:
    upstream_port: int
    parley_port: int
    key: str
    parley_pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


@contextmanager
def running() -> Iterator[Stack]:
    work = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    up_port, parley_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "bench")}
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "instant_upstream:app", "--port", str(up_port), "--log-level", "warning",
         "--no-access-log"],
        env=env, cwd=ROOT / "bench",
    )  # fmt: skip
    config = work / "parley.yaml"
    config.write_text(json.dumps({
        "database_url": f"sqlite+aiosqlite:///{work}/parley.db",
        "log_level": "warning",
        "providers": [{"name": "instant", "type": "openai", "base_url": f"http://127.0.0.1:{up_port}/v1",
                       "api_key": "sk-bench"}],
        "models": [{"name": "gpt-4o-mini", "provider": "instant", "upstream_model": "bench"}],
    }))  # fmt: skip
    penv = {**os.environ, "PARLEY_CONFIG": str(config)}
    made = subprocess.run([sys.executable, "-m", "parley", "keys", "create", "--name", "bench", "--json"], env=penv,
                          capture_output=True, text=True, check=True)  # fmt: skip
    parley = subprocess.Popen([sys.executable, "-m", "parley", "serve", "--port", str(parley_port)], env=penv)
    try:
        wait_up(f"http://127.0.0.1:{up_port}/")
        wait_up(f"http://127.0.0.1:{parley_port}/healthz")
        yield Stack(up_port, parley_port, json.loads(made.stdout)["key"], parley.pid)
    finally:
        for proc in (parley, upstream):
            proc.terminate()
        for proc in (parley, upstream):
            proc.wait(10)
