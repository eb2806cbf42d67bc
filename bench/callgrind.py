"""Instructions a server executes, counted by valgrind's callgrind: a figure the machine's load
barely moves, where CPU time moves with the neighbours (a VM often has no hardware counters).

    server = callgrind.command(out_dir, [python, "-m", "parley", "serve", ...])
    callgrind.start(pid)      # instrument from here on (start-up runs uninstrumented, much faster)
    callgrind.zero(pid)       # forget what was counted so far (the warm-up)
    per_thread = callgrind.dump(pid, out_dir)   # instructions per thread since the last zero or dump

Under callgrind the server runs ~25x slower and its threads take turns on one core, so only the
count means anything, never the time. Needs Debian's ``valgrind``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def command(out: Path, inner: Sequence[str]) -> list[str]:
    """``inner`` run under callgrind, uninstrumented until ``start``; one file per thread and dump in ``out``."""
    return [
        "valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no", "--separate-threads=yes",
        f"--callgrind-out-file={out}/callgrind.%p", *inner,
    ]  # fmt: skip


def _control(flag: str, value: str | None, pid: int) -> None:
    subprocess.run(["callgrind_control", flag, *([value] if value else []), str(pid)], check=True, capture_output=True)


def start(pid: int) -> None:
    _control("-i", "on", pid)


def zero(pid: int) -> None:
    _control("-z", None, pid)


def dump(pid: int, out: Path, wait: float = 60.0) -> dict[int, int]:
    """Instructions per thread (1 is the main thread) since the last ``zero`` or ``dump``
    (a dump starts the count again), from a new dump."""
    before = set(out.glob(f"callgrind.{pid}.*"))
    _control("-d", None, pid)
    deadline = time.monotonic() + wait
    while True:  # callgrind writes the dump's files when the server next runs, one per thread
        files = set(out.glob(f"callgrind.{pid}.*")) - before
        if files and all(f.stat().st_size > 0 for f in files):
            time.sleep(0.5)
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"callgrind wrote no dump for {pid} within {wait:.0f}s")
        time.sleep(0.2)
    counts: dict[int, int] = {}
    for f in set(out.glob(f"callgrind.{pid}.*")) - before:
        text = f.read_text(errors="replace")
        thread = re.search(r"^thread: (\d+)", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if thread and total:
            counts[int(thread.group(1))] = counts.get(int(thread.group(1)), 0) + int(total.group(1))
    return counts
