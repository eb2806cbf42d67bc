"""Spreadsheets: .xlsx (openpyxl), .xls (xlrd), .csv — every sheet a labelled Markdown table."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from parley.extract import zipguard
from parley.extract.errors import ParseFailure
from parley.extract.tables import markdown
from parley.extract.text import decode


def _render(sheets: Sequence[tuple[str, Sequence[Sequence[Any]]]], ext: str) -> tuple[str, dict[str, Any]]:
    parts, total = [], 0
    for name, rows in sheets:
        rows = [r for r in rows if any(v not in (None, "") for v in r)]
        total += len(rows)
        table = markdown(rows)
        parts.append(f"## Sheet: {name}\n\n{table}" if table else f"## Sheet: {name}\n\n(empty)")
    return "\n\n".join(parts), {
        "type": ext,
        "sheetCount": len(sheets),
        "sheetNames": [n for n, _ in sheets],
        "totalRows": total,
    }


def extract_xlsx(data: bytes, ext: str) -> tuple[str, dict[str, Any]]:
    import openpyxl

    zipguard.check(data, "XLSX")
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ParseFailure("XLSX", f"the file is corrupt ({type(exc).__name__})") from None
    try:
        sheets = [(ws.title, [list(row) for row in ws.iter_rows(values_only=True)]) for ws in book.worksheets]
    finally:
        book.close()
    return _render(sheets, ext)


def extract_xls(data: bytes, ext: str) -> tuple[str, dict[str, Any]]:
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    except Exception as exc:  # noqa: BLE001
        reason = "the workbook is encrypted" if "encrypt" in str(exc).lower() else f"the file is corrupt ({exc})"
        raise ParseFailure("XLS", reason) from None
    sheets = []
    for sheet in book.sheets():
        sheets.append((sheet.name, [sheet.row_values(i) for i in range(sheet.nrows)]))
    return _render(sheets, ext)


def _csv_rows(text: str) -> Iterable[list[str]]:
    sample = text[:8192]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    return csv.reader(io.StringIO(text), dialect)


def extract_csv(data: bytes, ext: str, name: str = "Sheet1") -> tuple[str, dict[str, Any]]:
    try:
        rows = list(_csv_rows(decode(data)))
    except csv.Error as exc:
        raise ParseFailure("CSV", str(exc)) from None
    return _render([(name, rows)], ext)
