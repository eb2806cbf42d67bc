"""Where a Parley worker's CPU goes under load: py-spy samples it while wrk drives one path.

    python bench/profile.py [--conc 64] [--stream] [--seconds 10] [--top 25] [--out DIR]
    python bench/profile.py --summarize DIR/whole-c64.txt

Prints the functions most often on CPU (self) and most often on the stack (inclusive), as a
share of the samples in which the worker was running, and keeps py-spy's folded stacks in
--out for a closer look (speedscope.app and flamegraph.pl read them as they are).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wrk  # noqa: E402
from gateway import body  # noqa: E402
from stack import running  # noqa: E402

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else "py-spy"


def label(frame: str) -> str:
    m = FRAME.match(frame)
    if not m:
        return frame
    parts = Path(m["file"]).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else m["file"]
    return f"{m['func']} ({short})"


def package(frame: str) -> str:
    """Who a frame belongs to: its top-level package (py-spy prints paths from the import
    root), or for parley the module."""
    m = FRAME.match(frame)
    path = m["file"] if m else frame
    if path.startswith("parley/"):
        return path
    return path.split("/", 1)[0] if "/" in path else path


def stacks(folded: Path) -> Iterator[tuple[list[str], int]]:
    """py-spy's folded output: each sampled stack (raw frames, outermost first) and its count."""
    for line in folded.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack:
            yield stack.split(";"), int(n)


def summarize(folded: Path, top: int) -> None:
    self_counts: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for raw, count in stacks(folded):
        frames = [label(f) for f in raw]
        total += count
        self_counts[frames[-1]] += count
        by_package[package(raw[-1])] += count
        for f in set(frames):
            incl[f] += count
    print(f"{total} samples with a thread of the worker holding the GIL")
    print("\nself time by package or parley module:")
    for f, n in by_package.most_common(12):
        print(f"  {100 * n / total:5.1f}%  {f}")
    print(f"\ntop {top} functions by self time:")
    for f, n in self_counts.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {f}")
    # The frames every request passes through (the CLI, uvicorn's loop) say nothing: skip them.
    print(f"\ntop {top} functions by inclusive time (without those on over 90% of samples):")
    for f, n in [x for x in incl.most_common() if x[1] <= 0.9 * total][:top]:
        print(f"  {100 * n / total:5.1f}%  {f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--model", default="gpt-4o-mini", help="`long`: 50-chunk streams, to see each chunk's cost")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", type=Path, default=Path("/tmp/parley-profile"))
    ap.add_argument("--summarize", type=Path, help="only print the summary of a kept folded-stacks file")
    args = ap.parse_args()
    if args.summarize:
        summarize(args.summarize, args.top)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"{'stream' if args.stream else 'whole'}-c{args.conc}" + (
        "" if args.model == "gpt-4o-mini" else f"-{args.model}"
    )
    folded = args.out / f"{name}.txt"
    with running() as stack:
        data = body(args.model, args.stream)
        auth = {"authorization": f"Bearer {stack.key}"}
        wrk.run(stack.parley_port, "/v1/chat/completions", data, auth, args.conc, 2)  # warm
        load = threading.Thread(
            target=wrk.run,
            args=(stack.parley_port, "/v1/chat/completions", data, auth, args.conc, args.seconds + 2),
        )
        load.start()
        # Blocking sampling (py-spy pauses the worker ~0.1 ms per sample, 1-2% at 200 Hz):
        # --nonblocking reads stacks while they change and attributes time to wrong frames.
        # --gil: only the thread holding the GIL, i.e. the Python work; otherwise the database
        # driver's idle threads (waiting on a queue) are counted as running.
        subprocess.run(
            [py_spy(), "record", "--pid", str(stack.parley_pid), "--duration", str(int(args.seconds)),
             "--rate", "200", "--gil", "--format", "raw", "--output", str(folded)],
            check=True, capture_output=True,
        )  # fmt: skip
        load.join()
    print(f"{name}: profile of `parley serve` under wrk, {args.seconds:g} s; stacks in {args.out}")
    summarize(folded, args.top)


if __name__ == "__main__":
    main()
