"""What usage records, limits and metrics cost: Parley with them on vs. off, same run.

    python bench/accounting.py [--requests 1500] [--seconds 1] [--rounds 30] [--control]
    python bench/accounting.py --profile DIR [--stream] [--seconds 10]
    python bench/accounting.py --together --only whole:64 --on usage   # one part alone
    python bench/accounting.py --control --limits rpm   # the key with one limit, not four

Starts two stacks from bench/stack.py (each: the instant upstream and `parley serve`, one
worker, SQLite): one with usage recording and metrics off and an unlimited key, one with
usage recording, metrics and a key that has an rpm, tpm, concurrent-stream limit and daily
budget (high enough never to refuse, so every request goes through the whole admission and
accounting). Then, for whole and streamed requests at concurrency 1 and 64, measures both in
alternating rounds and prints p50 latency and throughput of each and the ratio on/off (best
round of each), and the CPU time each server process spent per request (from /proc: steadier than throughput on a
busy machine) and its ratio; then the median over the rounds of each round's on/off ratio of
throughput and of CPU per request (the two runs of a round are close in time, so this is the
figure a machine busy with other work moves least). Rounds are short and many by default: on a
shared VM the CPU's own speed moves, a fixed loop of Python running at 0.55x to 1.1x of its
median speed from one 200 ms slice to the next, in steps that last seconds; two runs a second
apart mostly see the same speed, and the median of thirty such pairs is steadier than that of
a few long ones. The last two columns are the voluntary
context switches of all the server's threads per request (median of the rounds): how often its threads
wake, or wait for the GIL.

``--control`` starts a third server, a twin of "off", and measures it in the same rounds: its
ratio to "off" (an A/A pair) is how far the machine alone moves the figures in this very run,
printed beside the on/off ratios of every round.

``--limits`` names the limits the "on" server's key has, of ``rpm``, ``tpm``, ``budget`` and
``streams`` (all four by default): a key with requests per minute alone is the common case, and
each further limit adds its own bookkeeping to every request.

``--on`` turns on only some of the three parts in the "on" server (usage, metrics, limits), to
weigh each alone against the same "off" server. ``--on ""`` turns none on: the two servers are
then the same, and the ratios show how far the machine alone moves them (an A/A run: on a
machine other work shares, run it beside any on/off figure). bench/accounting_cost.py measures
accounting's own CPU per request in one process, which other work moves little.

With ``--instructions`` both servers run under valgrind's callgrind (bench/callgrind.py) and it
prints the instructions each executes per request, on all its threads, in each case (a warm-up
of ``--requests`` requests, then ``--requests`` counted): a count the machine's load barely moves,
where CPU time moves by as much as is being measured. Under callgrind a server runs ~25x slower,
so the intervals of its periodic work, and the spare stream slots' shelf life and idle time,
are stretched 25x (``SLOWDOWN``) for both servers: that work then weighs per request about as
at full speed.

With ``--profile DIR`` it instead drives each server in turn at concurrency 64 while py-spy
samples it, keeps both folded-stack files in DIR (off.txt, on.txt) and prints the top frames
of each (see bench/profile.py), to show where the difference goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profile import label, py_spy, stacks, summarize  # noqa: E402

import callgrind  # noqa: E402
import scratch  # noqa: E402
from loadgen import Result, request_bytes, run  # noqa: E402
from stack import LIMITS, running  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1500, help="requests per round at concurrency 1")
    ap.add_argument(
        "--seconds", type=float, help="duration of each round at concurrency 64 (1; 8 with --profile or --together)"
    )
    ap.add_argument("--rounds", type=int, help="alternating rounds per mode (30; 4 with --together)")
    ap.add_argument("--only", default="", help="some cases only, e.g. stream:64,whole:64 (default: all four)")
    ap.add_argument("--together", action="store_true", help="load both servers at the same time (a busy machine)")
    ap.add_argument(
        "--on",
        default="usage,metrics,limits",
        help="what the 'on' server has on, to weigh each part alone: e.g. --on metrics (default: all three; "
        "'' for none: an A/A run, the machine's noise)",
    )
    ap.add_argument(
        "--limits",
        default=",".join(LIMITS),
        help=f"the limits the 'on' server's key has (default: all of {', '.join(LIMITS)}; e.g. --limits rpm)",
    )
    ap.add_argument(
        "--control",
        action="store_true",
        help="also start a second 'off' server and measure it in the same rounds: its ratio to 'off' is "
        "how far the machine alone moves the figures in this very run",
    )
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="count each server's instructions per request under valgrind's callgrind instead of timing it",
    )
    ap.add_argument("--profile", type=Path, help="profile both servers under load instead, stacks kept here")
    ap.add_argument("--stream", action="store_true", help="with --profile: streamed requests")
    ap.add_argument(
        "--nonblocking", action="store_true", help="with --profile: py-spy never pauses the servers (less exact stacks)"
    )
    ap.add_argument("--top", type=int, default=30, help="with --profile: frames listed")
    args = ap.parse_args()
    short = args.profile is None and not args.together  # the alternating rounds: short and many
    if args.seconds is None:
        args.seconds = 1.0 if short else 8.0
    if args.rounds is None:
        args.rounds = 30 if short else 4
    if args.control and (args.profile is not None or args.together or args.instructions):
        ap.error("--control goes with the alternating rounds, not with --profile, --together or --instructions")
    if args.instructions and (args.profile is not None or args.together):
        ap.error("--instructions counts each server on its own, not with --profile or --together")
    if args.instructions and not callgrind.available():
        ap.error("--instructions needs valgrind (apt-get install valgrind)")
    parts = {p.strip() for p in args.on.split(",") if p.strip()}
    if parts - {"usage", "metrics", "limits"}:
        ap.error("--on takes usage, metrics and limits")
    limits = [name.strip() for name in args.limits.split(",") if name.strip()]
    if set(limits) - set(LIMITS):
        ap.error(f"--limits takes {', '.join(LIMITS)}")
    work = scratch.folder("parley-bench-accounting-")
    server = None
    if args.instructions:
        # Under callgrind a server runs ~25x slower: its periodic work (the accounting sync,
        # key and limit refreshes, the embedding queue's poll) would weigh 25x more per
        # request than at full speed. Their intervals are stretched as much, for both servers,
        # and so are the spare stream slots' shelf life, the idle time after which they go back,
        # and the slack a slot has past its stream:
        # constants, set before the server starts (the server itself, not `parley serve`, which
        # starts it in a fresh interpreter; the database is migrated by `parley keys create`).
        for name, seconds in _INTERVALS.items():
            os.environ[name] = str(seconds * SLOWDOWN)
        stretched = (
            "import sys, parley.accounting as a, parley.limits.quota as q; "
            f"q.SHELF *= {SLOWDOWN}; q.IDLE *= {SLOWDOWN}; a.STREAM_SLACK *= {SLOWDOWN}; "
            "from parley.serving import main; main(['127.0.0.1', sys.argv[1], '1'])"
        )
        server = callgrind.command(work, [sys.executable, "-c", stretched])
    saved = dict(os.environ)
    with ExitStack() as stacks:
        # The stacks' processes take their settings from the environment at start.
        os.environ.update(
            PARLEY_DATABASE_URL=f"sqlite+aiosqlite:///{work}/off.db",
            PARLEY_USAGE_RECORDING="false",
            PARLEY_METRICS="false",
        )
        off = stacks.enter_context(running(server=server))
        control = None
        if args.control:
            os.environ["PARLEY_DATABASE_URL"] = f"sqlite+aiosqlite:///{work}/control.db"
            twin = stacks.enter_context(running())
            control = (twin.parley_port, twin.parley_pid, twin.key)
        os.environ.clear()
        os.environ.update(saved)
        on_db = f"sqlite+aiosqlite:///{work}/on.db"
        os.environ["PARLEY_DATABASE_URL"] = on_db
        os.environ["PARLEY_USAGE_RECORDING"] = str("usage" in parts).lower()
        os.environ["PARLEY_METRICS"] = str("metrics" in parts).lower()
        on = stacks.enter_context(running(server=server, limited=limits if "limits" in parts else False))
        os.environ.clear()
        os.environ.update(saved)
        servers = (off.parley_port, off.parley_pid, off.key), (on.parley_port, on.parley_pid, on.key)
        if args.instructions:
            _instructions(*servers, args, work)
        elif args.profile is not None:
            _profile(*servers, args)
        elif args.together:
            _together(*servers, args)
        else:
            _bench(*servers, args, control)


SLOWDOWN = 25
_INTERVALS = {"PARLEY_USAGE_FLUSH_INTERVAL": 1.0, "PARLEY_AUTH_CACHE_TTL": 2.0, "PARLEY_EMBEDDING_POLL": 1.0}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _switches(pid: int) -> int:
    """Voluntary context switches of every thread of a process so far: how often its threads
    wait and wake (for the network, a queue, the GIL). The involuntary ones are left out: they
    grow with the CPU time spent, however it is spent."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[-1])
        except OSError:  # the thread ended meanwhile
            pass
    return total


def _measure(port: int, pid: int, req: bytes, conc: int, n: int, secs: float) -> tuple[Result, float, float]:
    """One round; the server's CPU microseconds and context switches per request in it."""
    cpu, switches = _cpu_seconds(pid), _switches(pid)
    result = asyncio.run(run("127.0.0.1", port, req, conc, n, secs))
    done = max(len(result.latencies), 1)
    return result, (_cpu_seconds(pid) - cpu) / done * 1e6, (_switches(pid) - switches) / done


Server = tuple[int, int, str]  # port, pid, key


def _body(stream: bool) -> bytes:
    return json.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        }
    ).encode()


def _frames(folded: Path) -> tuple[Counter[str], Counter[str], int]:
    """Samples per function: on CPU itself, on the stack at all; and the total."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for raw, n in stacks(folded):
        frames = [label(f) for f in raw]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    return own, incl, total


_LOAD = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from loadgen import run
conc = int(sys.argv[5]) if len(sys.argv) > 5 else 64
result = asyncio.run(run("127.0.0.1", int(sys.argv[2]), bytes.fromhex(sys.argv[3]), conc, 10**9, float(sys.argv[4])))
print(len(result.latencies))
"""


def _together(off_server: Server, on_server: Server, args: argparse.Namespace) -> None:
    """Each round loads both servers at once (each its own load process): whatever else the
    machine does then weighs on both alike, where alternating rounds would catch it on one.
    Prints each round's figures and the median ratios on/off."""
    here = str(Path(__file__).resolve().parent)
    servers = {"off": off_server, "on": on_server}
    only = {c.strip() for c in args.only.split(",") if c.strip()} or {"whole:64", "stream:64"}
    for case in sorted(only, key=lambda c: (c.startswith("stream"), c)):
        mode, conc = case.split(":")
        body = _body(mode == "stream")
        reqs = {}
        for name, (port, _, key) in servers.items():
            reqs[name] = request_bytes(
                "127.0.0.1", port, "/v1/chat/completions", body, {"authorization": f"Bearer {key}"}
            )
            asyncio.run(run("127.0.0.1", port, reqs[name], 4, 300, 5))  # warm
        rps_ratios, cpu_ratios = [], []
        for i in range(args.rounds):
            cpu = {name: _cpu_seconds(pid) for name, (_, pid, _) in servers.items()}
            loads = {
                name: subprocess.Popen(
                    [sys.executable, "-c", _LOAD, here, str(port), reqs[name].hex(), str(args.seconds), conc],
                    stdout=subprocess.PIPE,
                    text=True,
                )  # fmt: skip
                for name, (port, _, _) in servers.items()
            }
            done = {name: int(p.communicate()[0].strip() or 0) for name, p in loads.items()}
            per = {
                name: (_cpu_seconds(pid) - cpu[name]) / max(done[name], 1) * 1e6
                for name, (_, pid, _) in servers.items()
            }
            rps_ratios.append(done["on"] / max(done["off"], 1))
            cpu_ratios.append(per["on"] / per["off"])
            off_rps, on_rps = done["off"] / args.seconds, done["on"] / args.seconds
            print(
                f"{mode:<8}{conc:>5} round {i + 1}: rps off {off_rps:6.0f} on {on_rps:6.0f} ({rps_ratios[-1]:.2f}) | "
                f"cpu/req off {per['off']:6.0f}us on {per['on']:6.0f}us ({cpu_ratios[-1]:.2f})",
                flush=True,
            )
        rps_ratio, cpu_ratio = statistics.median(rps_ratios), statistics.median(cpu_ratios)
        print(f"{mode:<8}{conc:>5} median on/off: rps {rps_ratio:.2f}  cpu/req {cpu_ratio:.2f}", flush=True)


def _profile(off_server: Server, on_server: Server, args: argparse.Namespace) -> None:
    """Both servers under the same load at the same time (each its own load process), so
    whatever else the machine does weighs on both alike; py-spy samples both."""
    args.profile.mkdir(parents=True, exist_ok=True)
    body = _body(args.stream)
    here = str(Path(__file__).resolve().parent)
    loads, spies, cpu = {}, {}, {}
    servers = {"off": off_server, "on": on_server}
    for name, (port, _, key) in servers.items():
        req = request_bytes("127.0.0.1", port, "/v1/chat/completions", body, {"authorization": f"Bearer {key}"})
        asyncio.run(run("127.0.0.1", port, req, 4, 300, 5))  # warm
        cpu[name] = _cpu_seconds(servers[name][1])
        loads[name] = subprocess.Popen(
            [sys.executable, "-c", _LOAD, here, str(port), req.hex(), str(args.seconds + 2)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
    for name, (_, pid, _) in servers.items():
        # As bench/profile.py: blocking samples of the thread holding the GIL.
        spies[name] = subprocess.Popen(
            [py_spy(), "record", "--pid", str(pid), "--duration", str(int(args.seconds + 1)), "--rate", "200",
             "--gil", *(["--nonblocking"] if args.nonblocking else []), "--format", "raw",
             "--output", str(args.profile / f"{name}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    per_request: dict[str, tuple[Counter[str], Counter[str]]] = {}
    for name, (_, pid, _) in servers.items():
        requests = int(loads[name].communicate()[0].strip() or 0)
        spent = _cpu_seconds(pid) - cpu[name]
        spies[name].wait()
        folded = args.profile / f"{name}.txt"
        mode = "stream" if args.stream else "whole"
        print(f"\n===== accounting {name}: {mode} c=64, {requests / (args.seconds + 2):.0f} requests/s, "
              f"{spent / max(requests, 1) * 1e6:.0f} us CPU each =====")  # fmt: skip
        summarize(folded, args.top)
        own, incl, total = _frames(folded)
        # A function's share of the samples, of the CPU the server spent per request.
        scale = spent / max(requests, 1) * 1e6 / max(total, 1)
        per_request[name] = (
            Counter({f: n * scale for f, n in own.items()}),
            Counter({f: n * scale for f, n in incl.items()}),
        )
    for i, kind in enumerate(("self", "inclusive")):
        on, off = per_request["on"][i], per_request["off"][i]
        diff = sorted(((on[f] - off[f], f) for f in set(on) | set(off)), reverse=True)
        print(f"\nµs of CPU per request, {kind}: what accounting on adds (top {args.top})")
        for d, f in diff[: args.top]:
            print(f"  {d:+7.1f}  (off {off[f]:6.1f}, on {on[f]:6.1f})  {f}")


def _bench(off_server: Server, on_server: Server, args: argparse.Namespace, control: Server | None = None) -> None:
    print(
        f"{'mode':<8}{'conc':>5} | {'off p50':>9}{'on p50':>9}{'added':>8} | "
        f"{'off rps':>9}{'on rps':>9}{'on/off':>8} | {'off cpu/req':>11}{'on cpu/req':>11}{'on/off':>8} | "
        f"{'median on/off: rps':>18}{'cpu':>6} | {'waits/req off, on':>12}"
    )
    only = {c.strip() for c in args.only.split(",") if c.strip()}
    servers = {"off": off_server, "on": on_server}
    if control is not None:
        servers["control"] = control
    for stream in (False, True):
        body = _body(stream)
        path = "/v1/chat/completions"
        reqs = {
            name: request_bytes("127.0.0.1", port, path, body, {"authorization": f"Bearer {key}"})
            for name, (port, _, key) in servers.items()
        }
        for conc in (1, 64):
            mode = "stream" if stream else "whole"
            if only and f"{mode}:{conc}" not in only:
                continue
            n, secs = (args.requests, 120.0) if conc == 1 else (10**9, args.seconds)
            for name, (port, _, _) in servers.items():  # warm each
                asyncio.run(run("127.0.0.1", port, reqs[name], 4, 300, 5))
            got: dict[str, list[tuple[Result, float, float]]] = {name: [] for name in servers}
            names = list(servers)
            for i in range(args.rounds):
                # Each round starts with another server, so a drifting machine favours none.
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    port, pid, _ = servers[name]
                    got[name].append(_measure(port, pid, reqs[name], conc, n, secs))
            offs, ons = got["off"], got["on"]
            errors = sum(m[0].errors for ms in got.values() for m in ms)
            if errors:
                print(f"  errors: {errors}")
            off, off_cpu = max(offs, key=lambda m: m[0].rps)[0], min(m[1] for m in offs)
            on, on_cpu = max(ons, key=lambda m: m[0].rps)[0], min(m[1] for m in ons)
            off_sw, on_sw = statistics.median(m[2] for m in offs), statistics.median(m[2] for m in ons)
            # Each round's runs are close in time: the median of their ratios is the figure
            # least moved by a machine whose load changes under the benchmark.
            rps_ratio, cpu_ratio, _ = _ratios(ons, offs)
            print(
                f"{mode:<8}{conc:>5} | {off.p50:>7.2f}ms{on.p50:>7.2f}ms{on.p50 - off.p50:>6.2f}ms | "
                f"{off.rps:>9.0f}{on.rps:>9.0f}{on.rps / off.rps:>8.2f} | "
                f"{off_cpu:>9.0f}us{on_cpu:>9.0f}us{on_cpu / off_cpu:>8.2f} | {rps_ratio:>18.2f}{cpu_ratio:>6.2f} | "
                f"{off_sw:>6.2f}{on_sw:>6.2f}",
                flush=True,
            )
            if control is not None:
                for label_, ms in (("on/off", ons), ("control/off (A/A)", got["control"])):
                    rps, cpu, spread = _ratios(ms, offs)
                    print(
                        f"{'':13} {label_:<18} rounds' cpu ratios {spread}: median rps {rps:.2f}, cpu {cpu:.2f}",
                        flush=True,
                    )


def _instructions(off_server: Server, on_server: Server, args: argparse.Namespace, work: Path) -> None:
    """Each case on each server: a warm-up, then ``--requests`` requests counted by callgrind."""
    print(
        f"instructions per request (callgrind; {args.requests} requests counted after as many to warm up; "
        f"periodic work's intervals x{SLOWDOWN})"
    )
    print(f"{'mode':<8}{'conc':>5} | {'off: main':>11}{'others':>9}{'all':>11} | "
          f"{'on: main':>11}{'others':>9}{'all':>11} | {'on/off: main':>12}{'all':>6}")  # fmt: skip
    only = {c.strip() for c in args.only.split(",") if c.strip()}
    servers = {"off": off_server, "on": on_server}
    for _, pid, _ in servers.values():
        callgrind.start(pid)
    for stream in (False, True):
        mode = "stream" if stream else "whole"
        for conc in (1, 64):
            if only and f"{mode}:{conc}" not in only:
                continue
            counted: dict[str, tuple[float, float]] = {}
            for name, (port, pid, key) in servers.items():
                req = request_bytes(
                    "127.0.0.1", port, "/v1/chat/completions", _body(stream), {"authorization": f"Bearer {key}"}
                )
                asyncio.run(run("127.0.0.1", port, req, conc, args.requests, 3600))  # warm-up
                callgrind.zero(pid)
                result = asyncio.run(run("127.0.0.1", port, req, conc, args.requests, 3600))
                threads = callgrind.dump(pid, work)
                done = max(len(result.latencies), 1)
                if result.errors:
                    print(f"  {name}: {result.errors} errors")
                main = threads.get(1, 0) / done
                counted[name] = (main, sum(threads.values()) / done)
            (off_main, off_all), (on_main, on_all) = counted["off"], counted["on"]
            print(
                f"{mode:<8}{conc:>5} | {off_main:>11,.0f}{off_all - off_main:>9,.0f}{off_all:>11,.0f} | "
                f"{on_main:>11,.0f}{on_all - on_main:>9,.0f}{on_all:>11,.0f} | {on_main / off_main:>12.3f}"
                f"{on_all / off_all:>6.3f}",
                flush=True,
            )


def _ratios(
    these: list[tuple[Result, float, float]], base: list[tuple[Result, float, float]]
) -> tuple[float, float, str]:
    """Round by round, ``these`` over ``base``: the median ratio of throughput and of CPU per
    request, and the CPU ratios of all the rounds, sorted (how far they spread)."""
    pairs = list(zip(these, base, strict=True))
    cpu = sorted(a[1] / max(b[1], 1e-9) for a, b in pairs)
    rps = statistics.median(a[0].rps / max(b[0].rps, 1e-9) for a, b in pairs)
    return rps, statistics.median(cpu), " ".join(f"{r:.2f}" for r in cpu)


if __name__ == "__main__":
    main()
