"""Tables as Markdown: the one table format every extractor writes (a person and a model can follow it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).replace("\r\n", " ").replace("\n", " ").replace("|", "\\|").strip()


def markdown(rows: Iterable[Sequence[Any]]) -> str:
    """Rows → a Markdown table; the first row is the header. Ragged rows are padded."""
    grid = [[cell(v) for v in row] for row in rows]
    grid = [row for row in grid if any(row)]
    if not grid:
        return ""
    width = max(len(row) for row in grid)
    grid = [row + [""] * (width - len(row)) for row in grid]
    lines = ["| " + " | ".join(grid[0]) + " |", "|" + "|".join(["---"] * width) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in grid[1:]]
    return "\n".join(lines)
