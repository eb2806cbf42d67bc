"""Gateway overhead: Parley in front of an instant upstream, against the upstream called directly
and against the floor (bench/floor_proxy.py: a bare asyncio pass-through proxy), all in one run.

    python bench/gateway.py [--seconds 4] [--repeat 3] [--workers 1] [--burst 1000] [--no-vendors]

Starts the instant upstream, the floor proxy and `parley serve` as separate processes. Parley runs
as it is configured out of the box, usage recording and metrics on, and its key has an rpm, tpm,
concurrent-stream limit and daily budget (high enough never to refuse): every request pays for
admission and accounting. bench/accounting.py measures the same gateway with all of that off beside
it on, in the same run. For whole and streamed (10 chunks) completions at concurrency 1, 64 and 256
it prints latency p50/p99 and throughput of each path, the latency the floor and Parley add over
direct, Parley's added latency as a multiple of the floor's, Parley's p99/p50, and the CPU time the
floor's and Parley's processes spend per request (steadier than latency on a shared machine). Each
figure is the median of ``--repeat`` runs, the three paths measured in turn within each, so machine
noise (other processes on the same cores) hits them alike. Then a burst: ``--burst`` streams (50
chunks, 20 ms apart) opened at once on each path: time to first token and Parley's peak RSS.

With ``--vendors`` (the default), streamed at concurrency 1 and 64: Parley's Anthropic egress (an
OpenAI client on a model whose provider is Anthropic's Messages API) and Anthropic ingress (a
client speaking Anthropic's /v1/messages on the OpenAI upstream's model), each one's added
latency over the upstream it fronts called directly, Parley's CPU per request, and both as a
multiple of the plain OpenAI-to-OpenAI path's, measured in turn in the same runs.

Fixed-concurrency runs use wrk when it is installed (one thread), else bench/loadgen.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402
import wrk  # noqa: E402
from loadgen import Stats, arun, request_bytes  # noqa: E402
from stack import Stack, cpu_seconds, running, worker_pids  # noqa: E402

PATH = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
PATHS = ("direct", "floor", "parley")
RUNS = (("whole", 1), ("whole", 64), ("stream", 1), ("stream", 64), ("stream", 256))


def body(model: str, stream: bool) -> bytes:
    messages = [{"role": "user", "content": "Say hello in one short sentence."}]
    return json.dumps({"model": model, "stream": stream, "messages": messages}).encode()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakRSS:
    """Samples the Parley workers' resident memory every 10 ms while in use; keeps the largest."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = max(rss_mb(p) for p in pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, *(rss_mb(p) for p in self.pids))

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def ratio(a: float, b: float) -> float:
    """a / b, or nan where b is no real baseline (a run too short to finish a request, or a
    floor that measured no added latency at all within the noise)."""
    return a / b if b > 0 else float("nan")


def header(args: argparse.Namespace) -> None:
    try:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio (no uvloop)"
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    client = "wrk (1 thread)" if wrk.available() and not args.python_client else "bench/loadgen.py"
    print(f"Parley gateway benchmark, {datetime.datetime.now().isoformat(timespec='minutes')}")
    print(
        f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}; event loop {loop}"
    )
    print(
        f"parley workers: {args.workers}; load generator: {client}; {args.seconds:g} s per run, "
        f"median of {args.repeat}; load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print()


def hit(
    args: argparse.Namespace, port: int, path: str, data: bytes, headers: dict[str, str], conc: int,
    seconds: float, pids: list[int],
) -> Stats:  # fmt: skip
    """One fixed-concurrency run, with the CPU the ``pids`` spent per request."""
    cpu = cpu_seconds(pids)
    if wrk.available() and not args.python_client:
        got = wrk.run(port, path, data, headers, conc, seconds)
    else:
        payload = request_bytes("127.0.0.1", port, path, data, headers)
        got = arun(loadgen.run("127.0.0.1", port, payload, conc, 10**9, seconds)).stats()
    got.cpu_us = (cpu_seconds(pids) - cpu) / max(got.requests, 1) * 1e6
    return got


def measure(
    stack: Stack, args: argparse.Namespace, mode: str, conc: int, seconds: float, model: str = "gpt-4o-mini"
) -> dict[str, Stats]:
    ports = {"direct": stack.upstream_port, "floor": stack.floor_port, "parley": stack.parley_port}
    # Whose CPU a path costs beyond the upstream's: CPU per request is far steadier than
    # latency when other processes share the cores.
    own = {"direct": [stack.upstream_pid], "floor": [stack.floor_pid], "parley": worker_pids(stack.parley_pid)}
    auth = {"authorization": f"Bearer {stack.key}"}
    return {
        name: hit(args, ports[name], PATH, body(model, mode == "stream"), auth if name == "parley" else {}, conc,
                  seconds, own[name])
        for name in PATHS
    }  # fmt: skip


def fixed_concurrency(stack: Stack, args: argparse.Namespace) -> None:
    for mode in ("whole", "stream"):  # warm every path: pools, lazy imports, caches
        measure(stack, args, mode, 64, 1)
    runs: dict[tuple[str, int], list[dict[str, Stats]]] = {r: [] for r in RUNS}
    for _ in range(args.repeat):
        for mode, conc in RUNS:
            runs[(mode, conc)].append(measure(stack, args, mode, conc, args.seconds))
    print(f"{'':12}| {'direct':^23}| {'floor proxy':^23}| {'parley':^23}")
    print(f"{'mode':<7}{'conc':>4}" + " | {:>7}{:>7}{:>8}".format("p50", "p99", "req/s") * 3)
    errors = 0
    for (mode, conc), reps in runs.items():
        line = f"{mode:<7}{conc:>4}"
        for name in PATHS:
            p50, p99, rps = (med([getattr(r[name], k) for r in reps]) for k in ("p50", "p99", "rps"))
            line += f" | {p50:>5.2f}ms{p99:>5.1f}ms{rps:>8.0f}"
            errors += sum(r[name].errors for r in reps)
        print(line, flush=True)
    print(
        f"\n{'':12}| {'latency added over direct, p50':^32}| {'parley':^18}| {'CPU per request (own process)':^31}\n"
        f"{'mode':<7}{'conc':>4} | {'floor':>9}{'parley':>10}{'x floor':>11} | {'p99/p50':>7}{'vs direct':>10}"
        f" | {'floor':>9}{'parley':>10}{'x floor':>10}"
    )
    for (mode, conc), reps in runs.items():
        floor_added = med([r["floor"].p50 - r["direct"].p50 for r in reps])
        parley_added = med([r["parley"].p50 - r["direct"].p50 for r in reps])
        multiple = med([ratio(r["parley"].p50 - r["direct"].p50, r["floor"].p50 - r["direct"].p50) for r in reps])
        tail = med([ratio(r["parley"].p99, r["parley"].p50) for r in reps])
        share = med([ratio(r["parley"].rps, r["direct"].rps) for r in reps])
        floor_cpu, parley_cpu = med([r["floor"].cpu_us for r in reps]), med([r["parley"].cpu_us for r in reps])
        print(
            f"{mode:<7}{conc:>4} | {floor_added:>7.2f}ms{parley_added:>8.2f}ms{multiple:>10.1f}x | {tail:>6.1f}x"
            f"{share:>9.2f}x | {floor_cpu:>7.0f}us{parley_cpu:>8.0f}us{ratio(parley_cpu, floor_cpu):>9.1f}x"
        )
    if errors:
        print(f"non-200 responses or socket errors: {errors}")


def chunk_cost(stack: Stack, args: argparse.Namespace) -> None:
    """A stream's CPU split into what each chunk costs and what the stream costs once: streams
    of 11 and of 53 events (the instant upstream's `long` model), the difference per event."""
    extra = 53 - 11
    got: dict[str, list[tuple[float, float]]] = {"floor": [], "parley": []}
    for _ in range(args.repeat):
        short = measure(stack, args, "stream", 64, args.seconds)
        long = measure(stack, args, "stream", 64, args.seconds, model="long")
        for name in got:
            per_chunk = (long[name].cpu_us - short[name].cpu_us) / extra
            got[name].append((per_chunk, short[name].cpu_us - 11 * per_chunk))
    print(f"\nstreamed at c=64, CPU of the proxy's own process, median of {args.repeat}:")
    for name, xs in got.items():
        chunk, fixed = med([c for c, _ in xs]), med([f for _, f in xs])
        print(f"  {name:<7} {chunk:>6.0f} us per chunk, {fixed:>6.0f} us per stream besides")


def settle(pids: list[int], deadline: float = 30) -> None:
    """Wait until the processes have used no CPU for half a second (start-up work done, such as
    the tokenizer Parley loads in a thread after it starts answering), or ``deadline`` passed."""
    end = time.monotonic() + deadline
    last = cpu_seconds(pids)
    while time.monotonic() < end:
        time.sleep(0.5)
        now = cpu_seconds(pids)
        if now - last < 0.02:
            return
        last = now


def bursts(stack: Stack, args: argparse.Namespace) -> None:
    ports = {"direct": stack.upstream_port, "floor": stack.floor_port, "parley": stack.parley_port}
    auth = {"authorization": f"Bearer {stack.key}"}
    pids = worker_pids(stack.parley_pid)
    for mode in ("whole", "stream"):  # warm every path (pools, lazy imports) when run on its own
        measure(stack, args, mode, 64, 1)
    settle(pids)
    idle = max(rss_mb(p) for p in pids)
    got: dict[str, list[loadgen.Burst]] = {name: [] for name in PATHS}
    peak = 0.0
    for _ in range(args.repeat):
        for name in PATHS:
            payload = request_bytes(
                "127.0.0.1", ports[name], PATH, body("slow", True), auth if name == "parley" else {}
            )
            with PeakRSS(pids) as rss:
                got[name].append(arun(loadgen.burst("127.0.0.1", ports[name], payload, args.burst)))
            if name == "parley":
                peak = max(peak, rss.peak)
    print(f"\n{args.burst} streams opened at once (50 chunks, 20 ms apart), median of {args.repeat} bursts:")
    print(
        f"{'path':<8}| {'first token p50':>15}{'p99':>9} | {'added p99 over direct':>21} | {'stream p50':>10} | "
        f"{'completed':>9}"
    )
    direct_p99 = med([b.ttft(99) for b in got["direct"]])
    for name in PATHS:
        bs = got[name]
        p99 = med([b.ttft(99) for b in bs])
        total = med([statistics.median(b.total) * 1000 if b.total else float("nan") for b in bs])
        done = min(len(b.first_token) for b in bs)
        print(
            f"{name:<8}| {med([b.ttft(50) for b in bs]):>13.0f}ms{p99:>7.0f}ms | {p99 - direct_p99:>19.0f}ms | "
            f"{total:>8.0f}ms | {done:>4}/{args.burst}"
        )
    print(f"parley worker RSS: {idle:.0f} MB before the bursts, peak {peak:.0f} MB during them")


def anthropic_body(model: str) -> bytes:
    messages = [{"role": "user", "content": "Say hello in one short sentence."}]
    return json.dumps({"model": model, "max_tokens": 64, "stream": True, "messages": messages}).encode()


def vendor_paths(stack: Stack) -> dict[str, tuple[int, str, bytes, dict[str, str], list[int], str]]:
    """Streamed paths through Parley in each dialect, and the upstream each one fronts called
    directly: port, path, body, headers, whose CPU it costs, the path it adds latency over."""
    version = {"anthropic-version": "2023-06-01"}
    bearer = {"authorization": f"Bearer {stack.key}"}
    up, parley = [stack.upstream_pid], worker_pids(stack.parley_pid)
    u, p = stack.upstream_port, stack.parley_port
    return {
        "direct OpenAI": (u, PATH, body("bench", True), {}, up, ""),
        "direct Anthropic": (u, ANTHROPIC, anthropic_body("bench"), {"x-api-key": "x", **version}, up, ""),
        "OpenAI→OpenAI": (p, PATH, body("gpt-4o-mini", True), bearer, parley, "direct OpenAI"),
        "Anthropic egress": (p, PATH, body("claude-bench", True), bearer, parley, "direct Anthropic"),
        "Anthropic ingress": (p, ANTHROPIC, anthropic_body("gpt-4o-mini"), {"x-api-key": stack.key, **version},
                              parley, "direct OpenAI"),
    }  # fmt: skip


def check_streams(paths: dict[str, tuple[int, str, bytes, dict[str, str], list[int], str]]) -> dict[str, int]:
    """A stream that ends in an error event is still a 200 to the load generator: make sure each
    path streams the whole answer before timing it. Returns each path's number of SSE events:
    the dialects frame the same answer in different numbers of events."""
    events = {}
    for name, (port, path, data, headers, _, _) in paths.items():
        got = httpx.post(f"http://127.0.0.1:{port}{path}", content=data, headers=headers, timeout=30)
        text = got.text
        if got.status_code != 200 or "w7" not in text or '"error"' in text:
            raise SystemExit(f"{name}: {got.status_code} {text[:500]}")
        events[name] = sum(1 for block in text.replace("\r\n", "\n").split("\n\n") if block.strip())
    return events


def vendors(stack: Stack, args: argparse.Namespace) -> None:
    """Parley translating between dialects, streamed (10 chunks), against its plain OpenAI path
    measured in the same run: Anthropic egress (an OpenAI client, an Anthropic upstream) and
    Anthropic ingress (an Anthropic client, an OpenAI upstream)."""
    paths = vendor_paths(stack)
    events = check_streams(paths)
    for port, path, data, headers, pids, _ in paths.values():  # warm: pools, lazy imports
        hit(args, port, path, data, headers, 64, 1, pids)
    runs: dict[int, list[dict[str, Stats]]] = {1: [], 64: []}
    for _ in range(args.repeat):
        for conc, reps in runs.items():
            reps.append({name: hit(args, *p[:4], conc, args.seconds, p[4]) for name, p in paths.items()})
    print(
        f"\nstreamed (10 chunks) in each dialect, median of {args.repeat} (the multiples: median of each run's own, "
        "paths measured in turn within a run)"
    )
    print("SSE events per stream: " + ", ".join(f"{name} {n}" for name, n in events.items()))
    print(
        f"{'path':<18}{'conc':>4} | {'p50':>9}{'p99':>9}{'req/s':>7} | {'added p50':>9} | {'parley CPU/req':>14} | "
        f"{'vs OpenAI→OpenAI: added p50':>27}{'CPU':>7}"
    )
    errors = 0
    summary = []
    for conc, reps in runs.items():
        for name, p in paths.items():
            p50, p99, rps = (med([getattr(r[name], k) for r in reps]) for k in ("p50", "p99", "rps"))
            errors += sum(r[name].errors for r in reps)
            line = f"{name:<18}{conc:>4} | {p50:>7.2f}ms{p99:>7.1f}ms{rps:>7.0f}"
            if p[5]:
                added = med([r[name].p50 - r[p[5]].p50 for r in reps])
                cpu = med([r[name].cpu_us for r in reps])
                line += f" | {added:>7.2f}ms | {cpu:>12.0f}us"
            if p[5] and name != "OpenAI→OpenAI":
                lat = med(
                    [ratio(r[name].p50 - r[p[5]].p50, r["OpenAI→OpenAI"].p50 - r["direct OpenAI"].p50) for r in reps]
                )
                cpu_x = med([ratio(r[name].cpu_us, r["OpenAI→OpenAI"].cpu_us) for r in reps])
                line += f" | {lat:>26.2f}x{cpu_x:>6.2f}x"
                summary.append(
                    f"  {name}, c={conc}: translation adds {(lat - 1) * 100:+.0f}% to Parley's own streamed "
                    f"overhead (added p50), {(cpu_x - 1) * 100:+.0f}% to its CPU per request"
                )
            print(line, flush=True)
    print("\n".join(summary))
    if errors:
        print(f"non-200 responses or socket errors: {errors}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of each fixed-concurrency run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed")
    ap.add_argument("--workers", type=int, default=1, help="parley serve --workers")
    ap.add_argument("--burst", type=int, default=1000, help="streams opened at once (0: no burst)")
    ap.add_argument("--python-client", action="store_true", help="use bench/loadgen.py even when wrk is installed")
    ap.add_argument(
        "--vendors",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also stream through Parley's Anthropic egress and ingress, against its OpenAI path",
    )
    ap.add_argument("--only", choices=("table", "vendors", "chunks", "burst"), help="run one section only")
    args = ap.parse_args()
    header(args)
    with running(workers=args.workers, limited=True) as stack:
        if args.only in (None, "table"):
            fixed_concurrency(stack, args)
        if args.vendors and args.only in (None, "vendors"):
            vendors(stack, args)
        if args.only in (None, "chunks"):
            chunk_cost(stack, args)
        if args.burst and args.only in (None, "burst"):
            bursts(stack, args)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
