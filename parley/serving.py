"""What `parley serve` becomes once the database is migrated: uvicorn serving ``parley.asgi:app``.

`parley serve` replaces its own process with this one (same PID, same signals), so the process
that serves requests holds only what the application imports: not the command line's libraries,
nor the migration tool with its templates (about 17 MB of a single worker's memory).

    python -m parley.serving HOST PORT WORKERS
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path


def command(host: str, port: int, workers: int) -> list[str]:
    """The command line of a process running ``main`` with the very ``parley`` package this one
    imported (a checkout's, not whatever the working directory or another install would give)."""
    root = str(Path(__file__).resolve().parents[1])
    boot = f"import sys; sys.path.insert(0, {root!r}); from parley.serving import main; main()"
    return [sys.executable, "-c", boot, host, str(port), str(workers)]


def event_loop(workers: int) -> str:
    """The event loop uvicorn runs each worker on. One worker takes every connection waiting
    in one turn (parley/event_loop.py); several share one listening socket, and uvloop's own
    accept, one connection per turn, is what spreads new connections over them: a worker
    that drained the queue took all of a load generator's 64 connections, and two workers
    served no more than one (3,611 req/s against 6,556 with uvloop's accept)."""
    return "parley.event_loop:new_event_loop" if workers == 1 else "uvloop"


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from parley.config import load_settings
    from parley.logs import setup_logging
    from parley.server_protocol import Protocol

    host, port, workers = argv or sys.argv[1:]
    setup_logging(load_settings().log_level)  # uvicorn's own lines too, as JSON like Parley's
    metrics_dir = None
    if int(workers) > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics to files here and /metrics adds them all up.
        metrics_dir = tempfile.mkdtemp(prefix="parley-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "parley.asgi:app",
            host=host,
            http=Protocol,
            loop=event_loop(int(workers)),
            port=int(port),
            workers=int(workers),
            log_config=None,  # parley.asgi sets up Parley's JSON logging in each worker
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
