"""Scratch folders for a benchmark run: made under the system's temporary folder, removed when
the benchmark exits (databases, logs, callgrind files, bench/search.py's PostgreSQL data)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def folder(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path
