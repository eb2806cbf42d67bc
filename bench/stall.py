"""What makes some requests wait: Parley under fixed-concurrency load, with bench/probe.py's
instruments, and the slowest requests matched against what happened while they ran.

    python bench/stall.py [--conc 64] [--seconds 10] [--stream] [--env PARLEY_AUTH_CACHE_TTL=0]
    python bench/stall.py --burst 1000 [--conc 64 --stream]   (slow streams opened at once, after
                                                            --conc's warm-up)

Prints the server-side latency spread, event-loop lags, garbage collections, auth-cache misses
(database lookups) and how they cluster, which of them the slowest 1% of requests overlapped,
and the Python stacks the loop was stuck in.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402
import wrk  # noqa: E402
from gateway import body  # noqa: E402
from loadgen import arun, request_bytes  # noqa: E402
from stack import BENCH, running  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def clusters(spans: list[tuple[float, float]], gap: float = 0.1) -> list[tuple[float, float, int]]:
    """Spans closer than ``gap`` seconds merged: (start, end, how many)."""
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a - out[-1][1] < gap:
            out[-1][1] = max(out[-1][1], b)
            out[-1][2] += 1
        else:
            out.append([a, b, 1])
    return [(a, b, int(n)) for a, b, n in out]


def overlaps(a: float, b: float, spans: list[tuple[float, float]]) -> bool:
    return any(s < b and a < e for s, e in spans)


def short_stack(stack: str) -> str:
    lines = [ln.strip() for ln in stack.splitlines() if ln.strip().startswith("File ")]
    keep = []
    for ln in lines[-4:]:
        path, _, rest = ln[6:].partition('", line ')
        keep.append(f"{'/'.join(path.split('/')[-2:])}:{rest.replace(', in ', ' ')}")
    return " <- ".join(reversed(keep))


def report(data: dict, t0: float) -> None:
    reqs = [(a, b) for a, b in data["requests"]]
    lat = [(b - a) * 1000 for a, b in reqs]
    p50 = statistics.median(lat)
    print(
        f"requests: {len(reqs)}; server-side p50 {p50:.1f} ms, p90 {pct(lat, 90):.1f}, p99 {pct(lat, 99):.1f}, "
        f"max {max(lat):.1f} (p99/p50 {pct(lat, 99) / p50:.1f}x)"
    )

    heap = data["heap"]
    print(
        f"heap after the run: {heap['tracked']} objects the collector tracks, {heap['frozen']} frozen; "
        f"thresholds {heap['threshold']}; largest containers {heap['largest']}; event loop {heap['loop']}"
    )
    lags = data["lags"]
    big = [(t, lag) for t, lag, _ in lags if lag > 0.02]
    busy = sum(cpu for _, lag, cpu in lags if lag > 0.02)
    print(
        f"loop lags > 5 ms: {len(lags)}, {sum(lag for _, lag, _ in lags) * 1000:.0f} ms in all; > 20 ms: {len(big)}, "
        f"max {max((lag for _, lag, _ in lags), default=0) * 1000:.0f} ms; during those > 20 ms the loop thread ran "
        f"{busy * 1000:.0f} of {sum(lag for _, lag in big) * 1000:.0f} ms (the rest it waited for a core)"
    )

    by_gen: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}
    for _, wall, gen, _collected, cpu in data["gcs"]:
        by_gen[gen].append((wall * 1000, cpu * 1000))
    print(
        "garbage collections (wall / CPU): "
        + "; ".join(
            f"gen{g} {len(d)}: {sum(w for w, _ in d):.0f} / {sum(c for _, c in d):.0f} ms, "
            f"max {max((w for w, _ in d), default=0):.1f} / {max((c for _, c in d), default=0):.1f} ms"
            for g, d in by_gen.items()
        )
    )
    gen2 = [(s, s + d) for s, d, g, *_ in data["gcs"] if g == 2]

    misses = [(a, b) for a, b in data["misses"]]
    bursts = clusters(misses)
    print(f"auth-cache misses (database lookups): {len(misses)} in {len(bursts)} bursts")
    for a, b, n in bursts[:8]:
        waits = [(e - s) * 1000 for s, e in misses if a <= s <= b]
        print(
            f"  at {a - t0:6.2f} s: {n:>4} lookups over {(b - a) * 1000:5.0f} ms, each waited p50 "
            f"{statistics.median(waits):.0f} ms, max {max(waits):.0f} ms"
        )
    miss_windows = [(a, b) for a, b, _ in bursts]

    cut = pct(lat, 99)
    slow = [(a, b) for a, b in reqs if (b - a) * 1000 >= cut]
    lag_spans = [(t, t + lag) for t, lag in big]
    # Against the share of all requests that overlapped the same spans: a cause shows as a
    # share well above that base rate, a coincidence (a lookup in the background) does not.
    print(f"the slowest 1% ({len(slow)} requests, >= {cut:.1f} ms) overlapped (all requests in brackets):")
    for name, spans in (
        ("an auth lookup", miss_windows),
        ("a gen2 collection", gen2),
        ("a loop lag > 20 ms", lag_spans),
        ("any of them", miss_windows + gen2 + lag_spans),
    ):
        n = sum(overlaps(a, b, spans) for a, b in slow)
        base = sum(overlaps(a, b, spans) for a, b in reqs)
        print(f"  {name:<20} {n:>5} ({n / max(len(slow), 1):4.0%})   [{base / max(len(reqs), 1):4.0%}]")

    print("largest loop lags, and what overlapped them:")
    for t, lag, cpu in sorted((x for x in lags if x[1] > 0.02), key=lambda x: -x[1])[:8]:
        gcs = [f"gen{g} {d * 1000:.0f} ms" for s, d, g, *_ in data["gcs"] if s < t + lag and t < s + d and d > 0.002]
        inflight = sum(1 for s, e in misses if s < t + lag and t < e)
        print(
            f"  at {t - t0:6.2f} s: {lag * 1000:5.0f} ms (loop ran {cpu * 1000:3.0f} ms); gc: {', '.join(gcs) or '-'}; "
            f"lookups in flight: {inflight}"
        )
    stacks = Counter(short_stack(s) for _, s in data["stalls"])
    # The watchdog thread gets the GIL only when the loop thread lets it go: a snapshot shows the
    # first GIL release after the loop got stuck (os.urandom in uuid4, a socket write), which
    # is the culprit only when the loop was stuck in Python code (then at the 5 ms switch).
    print(f"where the loop thread was when stuck > 15 ms ({len(data['stalls'])} snapshots), most frequent:")
    for stack, n in stacks.most_common(8):
        print(f"  {n:>4}  {stack}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the Parley process")
    ap.add_argument("--burst", type=int, default=0, help="open this many slow streams at once instead of wrk's load")
    args = ap.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    with running(server=[sys.executable, str(BENCH / "probe.py")], env=env) as stack:
        url = f"http://127.0.0.1:{stack.parley_port}"
        data_body = body("gpt-4o-mini", args.stream)
        auth = {"authorization": f"Bearer {stack.key}"}
        wrk.run(stack.parley_port, "/v1/chat/completions", data_body, auth, args.conc, 2)  # warm
        httpx.get(url + "/__probe")  # starts a new recording
        if args.burst:
            payload = request_bytes("127.0.0.1", stack.parley_port, "/v1/chat/completions", body("slow", True), auth)
            got = arun(loadgen.burst("127.0.0.1", stack.parley_port, payload, args.burst))
            data = httpx.get(url + "/__probe").json()
            print(
                f"{args.burst} slow streams at once: first token p50 {got.ttft(50):.0f} ms, p99 {got.ttft(99):.0f} "
                f"ms, max {got.ttft(100):.0f} ms; {got.errors} errors"
            )
            report(data, min(a for a, _ in data["requests"]))
            return
        result = wrk.run(stack.parley_port, "/v1/chat/completions", data_body, auth, args.conc, args.seconds)
        data = httpx.get(url + "/__probe").json()
    print(
        f"{'stream' if args.stream else 'whole'} c={args.conc}, {args.seconds:g} s, env {env or '-'}: wrk saw "
        f"{result.rps:.0f} req/s, p50 {result.p50:.1f} ms, p99 {result.p99:.1f} ms, {result.errors} errors"
    )
    report(data, min(a for a, _ in data["requests"]))


if __name__ == "__main__":
    main()
