"""Parsing in worker processes: a time limit that can really stop a parser, and a memory cap.

A thread cannot be stopped, so a pathological file would hold one forever; a process can be
killed. On a time-out the pool's processes are killed and a fresh pool is made on next use
(any other extraction running in it at that moment fails with a clear error too).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from parley.extract.errors import ExtractionError

MEMORY_LIMIT = 4 * 1024**3  # address space per worker


def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):
        pass


def _extract_in_worker(path: str, filename: str) -> tuple[str, dict[str, Any]]:
    from parley.extract.registry import extract_path

    return extract_path(path, filename)


class Sandbox:
    def __init__(self, workers: int = 2, seconds: float = 60.0) -> None:
        self.workers = workers
        self.seconds = seconds
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_limit_memory
            )
        return self._pool

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def run_path(self, path: str, filename: str) -> tuple[str, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor(), _extract_in_worker, path, filename)
        try:
            return await asyncio.wait_for(future, self.seconds)
        except TimeoutError:
            self._kill()
            raise ExtractionError(f"Failed to parse {filename}: parsing took longer than {self.seconds:g}s") from None
        except BrokenProcessPool:
            self._kill()
            raise ExtractionError(f"Failed to parse {filename}: the parser crashed or ran out of memory") from None

    async def run_bytes(self, filename: str, payload: bytes) -> tuple[str, dict[str, Any]]:
        fd, path = tempfile.mkstemp(prefix="parley-extract-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            return await self.run_path(path, filename)
        finally:
            os.unlink(path)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


_default: Sandbox | None = None


def default_sandbox() -> Sandbox:
    global _default
    if _default is None:
        _default = Sandbox()
    return _default


def configure(workers: int, seconds: float) -> Sandbox:
    global _default
    if _default is not None:
        _default.close()
    _default = Sandbox(workers, seconds)
    return _default
