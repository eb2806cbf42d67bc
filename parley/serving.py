"""What `parley serve` becomes once the database is migrated: uvicorn serving ``parley.asgi:app``.

`parley serve` replaces its own process with this one (same PID, same signals), so the process
that serves requests holds only what the application imports: not the command line's libraries,
nor the migration tool with its templates (about 17 MB of a single worker's memory).

    python -m parley.serving HOST PORT WORKERS
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any


def command(host: str, port: int, workers: int) -> list[str]:
    """The command line of a process running ``main`` with the very ``parley`` package this one
    imported (a checkout's, not whatever the working directory or another install would give)."""
    root = str(Path(__file__).resolve().parents[1])
    boot = f"import sys; sys.path.insert(0, {root!r}); from parley.serving import main; main()"
    return [sys.executable, "-c", boot, host, str(port), str(workers)]


LOOP = "parley.event_loop:new_event_loop"  # each worker takes every connection waiting at once


def workers_socket(host: str, port: int) -> socket.socket:
    """The port, bound for several workers: with SO_REUSEPORT, and never listened on here. Each
    worker listens on its own socket bound beside it (``parley.event_loop.own_listener``), and
    the kernel spreads new connections evenly over them. (Workers sharing one listening socket
    spread them only as each wakes first: 5 and 59 of 64 connections opened one after another.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        # A port another server listens on is refused, as without SO_REUSEPORT (which would
        # otherwise let a second `parley serve` of the same user quietly share it).
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from parley.config import load_settings
    from parley.logs import setup_logging
    from parley.server_protocol import Protocol

    host, port_text, workers_text = argv or sys.argv[1:]
    port, workers = int(port_text), int(workers_text)
    setup_logging(load_settings().log_level)  # uvicorn's own lines too, as JSON like Parley's
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics to files here and /metrics adds them all up.
        metrics_dir = tempfile.mkdtemp(prefix="parley-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    options: dict[str, Any] = {
        "host": host,
        "http": Protocol,
        "loop": LOOP,
        "port": port,
        "workers": workers,
        "log_config": None,  # parley.asgi sets up Parley's JSON logging in each worker
        "access_log": False,
        "timeout_graceful_shutdown": 5,
    }
    try:
        if workers > 1 and hasattr(socket, "SO_REUSEPORT") and sys.platform == "linux":
            # What uvicorn.run does for several workers, with the port bound as above (Linux
            # spreads connections over SO_REUSEPORT sockets; other systems do not).
            from uvicorn.supervisors import Multiprocess

            try:
                sock = workers_socket(host, port)
            except OSError as exc:  # the port in use, say: as uvicorn says it
                logging.getLogger("uvicorn.error").error(exc)
                sys.exit(3)
            logging.getLogger("uvicorn.error").info(
                "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, sock.getsockname()[1]
            )
            with contextlib.suppress(KeyboardInterrupt):
                Multiprocess(uvicorn.Config("parley.asgi:app", **options), sockets=[sock]).run()
        else:
            if workers > 1:  # one shared listening socket: each worker takes one connection per turn
                options["loop"] = "uvloop"
            uvicorn.run("parley.asgi:app", **options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
