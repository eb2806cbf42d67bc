"""What usage records, limits and metrics cost: Parley with them on vs. off, same run.

    python bench/accounting.py [--requests 3000] [--seconds 8] [--rounds 3]

Starts two stacks from bench/stack.py (each: the instant upstream and `parley serve`, one
worker, SQLite): one with usage recording and metrics off and an unlimited key, one with
usage recording, metrics and a key that has an rpm, tpm and daily budget (high enough never
to refuse, so every request goes through the whole admission and accounting). Then, for
whole and streamed requests at concurrency 1 and 64, measures both in alternating rounds and
prints p50 latency and throughput of each and the ratio on/off (best round of each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import Result, request_bytes, run  # noqa: E402
from stack import running  # noqa: E402


def _limited_key(database_url: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "parley", "keys", "create", "--name", "limited", "--rpm", "1000000000",
         "--tpm", "1000000000000", "--budget-usd", "1000000", "--json"],
        env={**os.environ, "PARLEY_DATABASE_URL": database_url}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(made.stdout)["key"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000, help="requests per round at concurrency 1")
    ap.add_argument("--seconds", type=float, default=8.0, help="duration of each round at concurrency 64")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per mode; the best of each counts")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="parley-bench-accounting-"))
    saved = dict(os.environ)
    with ExitStack() as stacks:
        # The stacks' processes take their settings from the environment at start.
        os.environ.update(
            PARLEY_DATABASE_URL=f"sqlite+aiosqlite:///{work}/off.db",
            PARLEY_USAGE_RECORDING="false",
            PARLEY_METRICS="false",
        )
        off = stacks.enter_context(running())
        os.environ.clear()
        os.environ.update(saved)
        on_db = f"sqlite+aiosqlite:///{work}/on.db"
        os.environ["PARLEY_DATABASE_URL"] = on_db
        on = stacks.enter_context(running())
        on_key = _limited_key(on_db)
        os.environ.clear()
        os.environ.update(saved)
        _bench(off.parley_port, off.key, on.parley_port, on_key, args)


def _bench(off_port: int, off_key: str, on_port: int, on_key: str, args: argparse.Namespace) -> None:
    print(
        f"{'mode':<8}{'conc':>5} | {'off p50':>9}{'on p50':>9}{'added':>8} | {'off rps':>9}{'on rps':>9}{'on/off':>8}"
    )
    for stream in (False, True):
        body = json.dumps(
            {
                "model": "gpt-4o-mini",
                "stream": stream,
                "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
            }
        ).encode()
        path = "/v1/chat/completions"
        off_req = request_bytes("127.0.0.1", off_port, path, body, {"authorization": f"Bearer {off_key}"})
        on_req = request_bytes("127.0.0.1", on_port, path, body, {"authorization": f"Bearer {on_key}"})
        for conc in (1, 64):
            n, secs = (args.requests, 120.0) if conc == 1 else (10**9, args.seconds)
            for port, req in ((off_port, off_req), (on_port, on_req)):  # warm both
                asyncio.run(run("127.0.0.1", port, req, 4, 300, 5))
            offs: list[Result] = []
            ons: list[Result] = []
            for _ in range(args.rounds):
                offs.append(asyncio.run(run("127.0.0.1", off_port, off_req, conc, n, secs)))
                ons.append(asyncio.run(run("127.0.0.1", on_port, on_req, conc, n, secs)))
            errors = sum(r.errors for r in offs + ons)
            if errors:
                print(f"  errors: {errors}")
            off = max(offs, key=lambda r: r.rps)
            on = max(ons, key=lambda r: r.rps)
            mode = "stream" if stream else "whole"
            print(
                f"{mode:<8}{conc:>5} | {off.p50:>7.2f}ms{on.p50:>7.2f}ms{on.p50 - off.p50:>6.2f}ms | "
                f"{off.rps:>9.0f}{on.rps:>9.0f}{on.rps / off.rps:>8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
