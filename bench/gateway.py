"""Gateway overhead: Parley in front of an instant upstream vs. the upstream called directly.

    python bench/gateway.py [--requests 3000] [--seconds 8]

Starts the instant upstream and `parley serve` (one worker) as separate processes, then, for
non-streaming and streaming at concurrency 1 and 64, prints latency p50/p99 direct and through
Parley, the latency Parley adds, and throughput with its ratio to the direct baseline, all
measured in this same run.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000, help="requests per run at concurrency 1")
    ap.add_argument("--seconds", type=float, default=8.0, help="duration of each run at concurrency 64")
    args = ap.parse_args()
    with running() as stack:
        _bench(stack.upstream_port, stack.parley_port, stack.key, args)


def _bench(up_port: int, parley_port: int, key: str, args: argparse.Namespace) -> None:
    print(
        f"{'mode':<10}{'conc':>5} | {'direct p50':>10}{'p99':>8} | {'parley p50':>10}{'p99':>8} | "
        f"{'added p50':>9}{'p99':>8} | {'direct rps':>10}{'parley rps':>11}{'ratio':>7}"
    )
    for stream in (False, True):
        body = json.dumps(
            {
                "model": "gpt-4o-mini",
                "stream": stream,
                "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
            }
        ).encode()
        direct = request_bytes("127.0.0.1", up_port, "/v1/chat/completions", body, {})
        via = request_bytes("127.0.0.1", parley_port, "/v1/chat/completions", body, {"authorization": f"Bearer {key}"})
        for conc in (1, 64, 256) if stream else (1, 64):
            n, secs = (args.requests, 120.0) if conc == 1 else (10**9, args.seconds)
            # Warm both paths (connection pools, caches, JIT-less but import-lazy code).
            asyncio.run(run("127.0.0.1", parley_port, via, 4, 200, 5))
            d = asyncio.run(run("127.0.0.1", up_port, direct, conc, n, secs))
            p = asyncio.run(run("127.0.0.1", parley_port, via, conc, n, secs))
            if p.errors or d.errors:
                print(f"  errors: direct {d.errors}, parley {p.errors}")
            mode = "stream" if stream else "whole"
            print(
                f"{mode:<10}{conc:>5} | {d.p50:>8.2f}ms{d.pct(99):>6.2f}ms | {p.p50:>8.2f}ms{p.pct(99):>6.2f}ms | "
                f"{p.p50 - d.p50:>7.2f}ms{p.pct(99) - d.pct(99):>6.2f}ms | {d.rps:>10.0f}{p.rps:>11.0f}"
                f"{p.rps / d.rps:>7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
