"""Two checkouts of Parley side by side, measured in turn: did a change make it cheaper?

    python bench/ab.py A_DIR B_DIR [--seconds 3] [--repeat 5]

Each checkout's `parley serve` (one worker) gets its own instant upstream. Runs alternate
between A and B, so whatever else loads the machine hits both alike, and the medians of
``--repeat`` runs are printed: latency, throughput and the worker's CPU per request (the
steadiest figure on a shared machine), plus each streamed chunk's CPU (streams of 11 and 53
events, the difference per event).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wrk  # noqa: E402
from gateway import body  # noqa: E402
from loadgen import Stats  # noqa: E402
from stack import Stack, cpu_seconds, running, worker_pids  # noqa: E402

MINI = "gpt-4o-mini"
RUNS = (("whole", 1, MINI), ("whole", 64, MINI), ("stream", 64, MINI), ("stream", 64, "long"))


def one(stack: Stack, mode: str, conc: int, model: str, seconds: float) -> Stats:
    pids = worker_pids(stack.parley_pid)
    auth = {"authorization": f"Bearer {stack.key}"}
    cpu = cpu_seconds(pids)
    out = wrk.run(stack.parley_port, "/v1/chat/completions", body(model, mode == "stream"), auth, conc, seconds)
    out.cpu_us = (cpu_seconds(pids) - cpu) / max(out.requests, 1) * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    got: dict[str, dict[tuple[str, int, str], list[Stats]]] = {"A": {r: [] for r in RUNS}, "B": {r: [] for r in RUNS}}
    with running(root=args.a.resolve()) as a, running(root=args.b.resolve()) as b:
        stacks = {"A": a, "B": b}
        for stack in stacks.values():  # warm
            for mode in ("whole", "stream"):
                one(stack, mode, 64, MINI, 1)
        for i in range(args.repeat):
            for run in RUNS:
                for name in ("A", "B") if i % 2 == 0 else ("B", "A"):
                    got[name][run].append(one(stacks[name], *run, args.seconds))
    print(f"A = {args.a}\nB = {args.b}\nmedians of {args.repeat} alternating runs of {args.seconds:g} s")
    print(f"{'':<22}{'p50 A':>9}{'p50 B':>9}{'req/s A':>9}{'req/s B':>9}{'CPU/req A':>11}{'CPU/req B':>11}{'B/A':>6}")
    for mode, conc, model in RUNS:
        ra, rb = got["A"][(mode, conc, model)], got["B"][(mode, conc, model)]

        def m(rs: list[Stats], k: str) -> float:
            return statistics.median(getattr(r, k) for r in rs)

        label = f"{mode} c={conc}" + (f" ({model})" if model != MINI else "")
        cpu_a, cpu_b = m(ra, "cpu_us"), m(rb, "cpu_us")
        print(
            f"{label:<22}{m(ra, 'p50'):>7.2f}ms{m(rb, 'p50'):>7.2f}ms{m(ra, 'rps'):>9.0f}{m(rb, 'rps'):>9.0f}"
            f"{cpu_a:>9.0f}us{cpu_b:>9.0f}us{cpu_b / cpu_a:>6.2f}"
        )
    for name in ("A", "B"):
        per_chunk = [
            (long.cpu_us - short.cpu_us) / 42
            for short, long in zip(got[name][("stream", 64, MINI)], got[name][("stream", 64, "long")], strict=True)
        ]
        print(f"{name}: {statistics.median(per_chunk):.0f} us CPU per streamed chunk")


if __name__ == "__main__":
    main()
