"""Accounting's own CPU per request, measured in one process: no servers, no network, so a
machine busy with other work moves it little (bench/accounting.py measures whole servers).

    python bench/accounting_cost.py [--rounds 7] [--requests 3000] [--instructions]

Prints the median over the rounds of:

- admit + finish of one request's ticket (parley/accounting.py) with everything off, with
  usage, metrics and a limited key (rpm, tpm and a daily budget) each alone, and all three;
- the HTTP metrics middleware (parley/api/metrics.py) around an ASGI app that does nothing;
- writing usage rows: the buffer flushed to a SQLite file as the accounting task does it, CPU
  of every thread of this process per row (the rows are written on a thread of their own).

With ``--instructions`` it runs itself under valgrind's callgrind (bench/callgrind.py) and
counts instructions instead of CPU time: figures a busy machine barely moves
(one round is enough; the callgrind calls around each measurement are counted and taken off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

import callgrind  # noqa: E402
import scratch  # noqa: E402
from starlette.routing import Router  # noqa: E402

from parley.accounting import Accounting  # noqa: E402
from parley.api.entry import Entry  # noqa: E402
from parley.api.limits import BodyLimits  # noqa: E402
from parley.caller import Caller  # noqa: E402
from parley.config import Settings  # noqa: E402
from parley.storage import db  # noqa: E402
from parley.usage.record import UsageRow  # noqa: E402

USAGE = {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}


UNDER_CALLGRIND = "PARLEY_BENCH_CALLGRIND" in os.environ
_counted = [0.0, 0.0]  # instructions of every thread so far, and what one reading of them costs


def _cpu() -> float:
    """CPU seconds of every thread of this process; under callgrind, millions of its
    instructions (so a figure per request, ×1e6 as for µs, comes out in instructions)."""
    if not UNDER_CALLGRIND:
        return time.process_time()
    # Each dump holds what was counted since the last one: their sum is the running total.
    _counted[0] += sum(callgrind.dump(os.getpid(), Path(os.environ["PARLEY_BENCH_CALLGRIND"])).values())
    _counted[0] -= _counted[1]
    return _counted[0] / 1e6


def _calibrate() -> None:
    """What a reading itself adds to an interval (its callgrind_control process, started and waited for)."""
    if UNDER_CALLGRIND:
        callgrind.start(os.getpid())
        _cpu()
        readings = []
        for _ in range(3):
            start = _cpu()
            readings.append(_cpu() - start)
        _counted[1] = min(readings) * 1e6


def _key(url: str, *flags: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "parley", "keys", "create", "--name", "cost", *flags, "--json"],
        env={**os.environ, "PARLEY_DATABASE_URL": url}, capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return str(json.loads(made.stdout)["id"])


async def _tickets(acc: Accounting, caller: Caller, n: int) -> float:
    spent = _cpu()
    for _ in range(n):
        ticket = await acc.admit(caller, "gpt-4o-mini", "instant", "bench", False)
        ticket.finish(200, USAGE)
    return (_cpu() - spent) / n * 1e6


async def _middleware(app: Any, n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        pass

    route = object()
    spent = _cpu()
    for _ in range(n):
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "route": route, "path_params": {},
                 "headers": [], "query_string": b""}  # fmt: skip
        await app(scope, receive, send)
    return (_cpu() - spent) / n * 1e6


def _entry(timed: bool) -> Entry:
    """The layer requests enter the routes through, with the HTTP metrics on or off."""
    limits = BodyLimits(1 << 24, 1 << 26, ("/v8/files/",))
    return Entry(_nothing, limits=limits, routes=[], router=Router(), handlers={}, timed=timed)


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _row(i: int) -> UsageRow:
    return UsageRow(
        time.time(), f"req-{i:012d}", "gateway", "key-1", None, None, None, "openai", "gpt-4o-mini",
        "instant", "instant", "bench", 12, 9, 0, 0, 1.5e-05, 0.3, None, 200, None, False,
    )  # fmt: skip


async def _rows(acc: Accounting, n: int) -> float:
    assert acc.writer is not None
    for i in range(n):
        acc.writer.put(_row(i))
    spent = _cpu()
    written = await acc.writer.flush()
    assert written == n, (written, n)
    return (_cpu() - spent) / n * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--requests", type=int, default=3000, help="per round and case")
    ap.add_argument("--instructions", action="store_true", help="count instructions under valgrind's callgrind")
    args = ap.parse_args()
    if args.instructions and not UNDER_CALLGRIND:
        _rerun_under_callgrind(args)
        return
    _calibrate()
    work = scratch.folder("parley-bench-cost-")
    url = f"sqlite+aiosqlite:///{work}/parley.db"
    free = _key(url)
    limited = _key(url, "--rpm", "1000000000", "--tpm", "1000000000000", "--budget-usd", "1000000")
    engine = db.create_engine(url)
    sessions = db.sessionmaker(engine)
    base: dict[str, Any] = {
        "database_url": url,
        "providers": [{"name": "instant", "type": "openai", "base_url": "http://127.0.0.1:9/v1"}],
        "models": [{"name": "gpt-4o-mini", "provider": "instant", "upstream_model": "bench",
                    "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}],
    }  # fmt: skip

    def accounting(usage: bool, metrics: bool) -> Accounting:
        return Accounting(Settings(**base, usage_recording=usage, metrics=metrics), sessions)

    off, everything = accounting(False, False), accounting(True, True)
    cases = {
        "off": (off, Caller("gateway", "r", "openai", key_id=free)),
        "usage": (accounting(True, False), Caller("gateway", "r", "openai", key_id=free)),
        "metrics": (accounting(False, True), Caller("gateway", "r", "openai", key_id=free)),
        "limits": (off, Caller("gateway", "r", "openai", key_id=limited)),
        "all": (everything, Caller("gateway", "r", "openai", key_id=limited)),
    }
    for acc, caller in cases.values():  # the limits read, the first lease and meters loaded
        await acc.admit(caller, "gpt-4o-mini", "instant", "bench", False)
        await acc.sync()
    found: dict[str, list[float]] = {name: [] for name in [*cases, "middleware off", "middleware on", "row"]}
    for _ in range(args.rounds):
        for name, (acc, caller) in cases.items():
            found[name].append(await _tickets(acc, caller, args.requests))
            if acc.writer is not None:
                acc.writer._rows.clear()  # written below, on their own
            await acc.sync()
        found["middleware off"].append(await _middleware(_entry(timed=False), args.requests))
        found["middleware on"].append(await _middleware(_entry(timed=True), args.requests))
        found["row"].append(await _rows(everything, args.requests))
    await engine.dispose()
    med = {name: statistics.median(values) for name, values in found.items()}
    if UNDER_CALLGRIND:  # from millions of instructions to thousands
        med = {name: value / 1000 for name, value in med.items()}
        print(f"thousands of instructions per request (callgrind), median of {args.rounds} rounds of {args.requests}")
    else:
        print(f"µs of CPU per request, median of {args.rounds} rounds of {args.requests}")
    for name in cases:
        extra = "" if name == "off" else f"  (+{med[name] - med['off']:.2f} over off)"
        print(f"  admit + finish, {name:<8} {med[name]:6.2f}{extra}")
    print(f"  HTTP metrics middleware  {med['middleware on'] - med['middleware off']:6.2f}")
    print(f"  writing one usage row    {med['row']:6.2f}  (all threads: the flush and the database writer)")
    total = med["all"] - med["off"] + med["middleware on"] - med["middleware off"] + med["row"]
    print(f"  all on adds              {total:6.2f}")


def _rerun_under_callgrind(args: argparse.Namespace) -> None:
    if not callgrind.available():
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    out = scratch.folder("parley-bench-cost-callgrind-")
    inner = [sys.executable, __file__, "--rounds", str(args.rounds), "--requests", str(args.requests)]
    env = {**os.environ, "PARLEY_BENCH_CALLGRIND": str(out)}
    subprocess.run(callgrind.command(out, inner), env=env, check=True, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    asyncio.run(main())
