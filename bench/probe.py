"""`parley serve` (one worker) with instruments, for finding what stalls the event loop.

    PARLEY_CONFIG=... python bench/probe.py PORT

Records, with CLOCK_MONOTONIC timestamps (the same clock in every process on Linux):
- every garbage collection: generation, wall and CPU duration, objects collected;
- every loop lag: a task asks to sleep 1 ms; any wake-up more than 5 ms late is a lag (with the
  CPU time the loop thread used meanwhile), and a watchdog thread snapshots the loop thread's
  Python stack while the loop is stuck;
- every key verification that missed the auth cache (a database lookup), start and end;
- every request: start and end as the ASGI app saw them.

`GET /__probe` returns all of it as JSON and starts a new recording. bench/stall.py reads it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import orjson
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's parley, as `python -m parley`
from parley.auth import keys  # noqa: E402
from parley.auth.keygen import hash_key  # noqa: E402

LAG_TICK = 0.001
LAG_REPORT = 0.005
WATCHDOG_AFTER = 0.015  # a loop this late gets its stack captured


class Recorder:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.gcs: list[tuple[float, float, int, int, float]] = []
        self.lags: list[tuple[float, float, float]] = []
        self.misses: list[tuple[float, float]] = []
        self.requests: list[tuple[float, float]] = []
        self.stalls: list[tuple[float, str]] = []

    def dump(self) -> dict[str, Any]:
        objs = gc.get_objects()
        sizes = sorted(
            ((len(o), type(o).__name__) for o in objs if isinstance(o, dict | list | set | tuple)), reverse=True
        )
        heap = {
            "tracked": len(objs),
            "frozen": gc.get_freeze_count(),
            "threshold": gc.get_threshold(),
            "largest": sizes[:5],
            "loop": type(asyncio.get_event_loop()).__module__,
        }
        return {"heap": heap, **{k: getattr(self, k) for k in ("gcs", "lags", "misses", "requests", "stalls")}}


rec = Recorder()
_gc_started = [0.0, 0.0]


def _on_gc(phase: str, info: dict[str, int]) -> None:
    # Wall time is what waiting requests feel; CPU time is what the collection itself cost
    # (on a busy machine the two differ by however long the process was not scheduled).
    if phase == "start":
        _gc_started[:] = time.monotonic(), time.thread_time()
    else:
        wall, cpu = time.monotonic() - _gc_started[0], time.thread_time() - _gc_started[1]
        rec.gcs.append((_gc_started[0], wall, info["generation"], info["collected"], cpu))


gc.callbacks.append(_on_gc)


def _record_lookups() -> None:
    """Time each database lookup of a key: ``KeyVerifier._lookup`` where it exists, else (older
    code, no such method) each ``verify`` that missed the cache."""
    lookup = getattr(keys.KeyVerifier, "_lookup", None)
    if lookup is not None:

        async def timed_lookup(self: keys.KeyVerifier, digest: str) -> Any:
            t0 = time.monotonic()
            try:
                return await lookup(self, digest)
            finally:
                rec.misses.append((t0, time.monotonic()))

        keys.KeyVerifier._lookup = timed_lookup  # type: ignore[method-assign]
        return
    verify = keys.KeyVerifier.verify

    async def timed_verify(self: keys.KeyVerifier, presented: str | None) -> keys.KeyIdentity:
        if not presented or self._cache.get(hash_key(presented)) is not None:
            return await verify(self, presented)
        t0 = time.monotonic()
        try:
            return await verify(self, presented)
        finally:
            rec.misses.append((t0, time.monotonic()))

    keys.KeyVerifier.verify = timed_verify  # type: ignore[method-assign]


_record_lookups()

_heartbeat = [time.monotonic()]


async def _lag_sampler() -> None:
    while True:
        t0, c0 = time.monotonic(), time.thread_time()
        await asyncio.sleep(LAG_TICK)
        now = time.monotonic()
        _heartbeat[0] = now
        late = now - t0 - LAG_TICK
        if late > LAG_REPORT:
            # CPU the loop thread used meanwhile: near the lag, the loop was busy; far below
            # it, the process was waiting for a core (other processes on the machine).
            rec.lags.append((t0, late, time.thread_time() - c0))


def _watchdog(loop_thread: int) -> None:
    """While the loop is stuck, grab what its thread is running (once per stall)."""
    seen = 0.0
    while True:
        time.sleep(0.003)
        beat = _heartbeat[0]
        if time.monotonic() - beat > WATCHDOG_AFTER and beat != seen:
            seen = beat
            frame = sys._current_frames().get(loop_thread)
            if frame is not None:
                stack = "".join(traceback.format_stack(frame, limit=14))
                rec.stalls.append((time.monotonic(), stack))


class Probe:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            asyncio.get_running_loop().create_task(_lag_sampler())
            threading.Thread(target=_watchdog, args=(threading.get_ident(),), daemon=True).start()
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] == "/__probe":
            body = orjson.dumps(rec.dump())
            rec.reset()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        t0 = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            rec.requests.append((t0, time.monotonic()))


def main() -> None:
    from parley.cli import _settings
    from parley.logs import setup_logging
    from parley.storage import db

    settings = _settings(None)
    setup_logging(settings.log_level)
    asyncio.run(db.migrate(settings.database_url))
    os.environ["PARLEY_MIGRATED"] = settings.database_url
    from parley.asgi import app

    # Experiments: PROBE_GC_FREEZE=1 freezes what is alive now, PROBE_GC_THRESHOLD="7000,10,10".
    if os.environ.get("PROBE_GC_FREEZE"):
        gc.freeze()
    if os.environ.get("PROBE_GC_THRESHOLD"):
        gc.set_threshold(*(int(x) for x in os.environ["PROBE_GC_THRESHOLD"].split(",")))
    uvicorn.run(Probe(app), host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)


if __name__ == "__main__":
    main()
