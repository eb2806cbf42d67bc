"""Memory over many requests: 100,000 /v1 requests through one Parley worker, its RSS sampled.

    python bench/soak.py [--requests 100000]

Starts the instant upstream and `parley serve`, sends whole and streamed completions (a mix,
64 at a time), and prints the server's resident memory every 10,000 requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import request_bytes, run  # noqa: E402
from stack import running  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    args = ap.parse_args()
    with running() as stack:
        port = stack.parley_port
        payloads = [
            request_bytes(
                "127.0.0.1",
                port,
                "/v1/chat/completions",
                json.dumps(
                    {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
                ).encode(),
                {"authorization": f"Bearer {stack.key}"},
            )
            for stream in (False, True)
        ]
        print(f"{'requests':>9} {'rss MB':>8}")
        print(f"{0:>9} {rss_mb(stack.parley_pid):>8.1f}", flush=True)
        done = 0
        while done < args.requests:
            for payload in payloads:
                result = asyncio.run(run("127.0.0.1", port, payload, 64, 5000, 600))
                done += len(result.latencies)
                if result.errors:
                    print(f"  {result.errors} errors")
            print(f"{done:>9} {rss_mb(stack.parley_pid):>8.1f}", flush=True)


if __name__ == "__main__":
    main()
