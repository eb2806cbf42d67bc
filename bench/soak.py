"""Memory over many requests: 100,000 /v1 requests through one Parley worker, its RSS sampled.

    python bench/soak.py [--requests 100000]

Starts the instant upstream and `parley serve`, sends whole and streamed completions (a mix,
64 at a time), and prints the server's resident memory every 10,000 requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import ROOT, free_port, wait_up  # noqa: E402
from loadgen import request_bytes, run  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="parley-soak-"))
    up_port, port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "bench")}
    upstream = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "instant_upstream:app",
            "--port",
            str(up_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        cwd=ROOT / "bench",
    )
    config = work / "parley.yaml"
    config.write_text(
        json.dumps(
            {
                "database_url": f"sqlite+aiosqlite:///{work}/parley.db",
                "log_level": "warning",
                "providers": [{"name": "instant", "type": "openai", "base_url": f"http://127.0.0.1:{up_port}/v1"}],
                "models": [{"name": "gpt-4o-mini", "provider": "instant", "upstream_model": "bench"}],
            }
        )
    )
    penv = {**os.environ, "PARLEY_CONFIG": str(config)}
    key = json.loads(
        subprocess.run(
            [sys.executable, "-m", "parley", "keys", "create", "--name", "soak", "--json"],
            env=penv,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["key"]
    server = subprocess.Popen([sys.executable, "-m", "parley", "serve", "--port", str(port)], env=penv)
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz")
        payloads = [
            request_bytes(
                "127.0.0.1",
                port,
                "/v1/chat/completions",
                json.dumps(
                    {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
                ).encode(),
                {"authorization": f"Bearer {key}"},
            )
            for stream in (False, True)
        ]
        print(f"{'requests':>9} {'rss MB':>8}")
        print(f"{0:>9} {rss_mb(server.pid):>8.1f}", flush=True)
        done = 0
        while done < args.requests:
            for payload in payloads:
                result = asyncio.run(run("127.0.0.1", port, payload, 64, 5000, 600))
                done += len(result.latencies)
                if result.errors:
                    print(f"  {result.errors} errors")
            print(f"{done:>9} {rss_mb(server.pid):>8.1f}", flush=True)
    finally:
        server.terminate()
        upstream.terminate()
        server.wait(10)
        upstream.wait(10)


if __name__ == "__main__":
    main()
