"""Which extractor reads which extension, and the entry points every caller uses.

``extract_sync`` parses in the calling process (the CLI, ingestion); ``extract_bytes`` runs it
in a worker process under a time limit (the server), so a pathological file becomes an error
instead of a stuck worker, and the event loop keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from parley.extract import data, html, pdf, sheets, slides, text, word
from parley.extract.errors import ExtractionError, ParseFailure, UnsupportedType

Extractor = Callable[[bytes, str], tuple[str, dict[str, Any]]]

EXTRACTORS: dict[str, Extractor] = {
    "pdf": pdf.extract_pdf,
    "docx": word.extract_docx,
    "doc": word.extract_doc,
    "txt": text.extract_text,
    "md": text.extract_text,
    "xlsx": sheets.extract_xlsx,
    "xls": sheets.extract_xls,
    "csv": sheets.extract_csv,
    "pptx": slides.extract_pptx,
    "html": html.extract_html,
    "htm": html.extract_html,
    "json": data.extract_json,
    "yaml": data.extract_yaml,
    "yml": data.extract_yaml,
}


def clean(value: str) -> str:
    """Safe for PostgreSQL text: no NUL characters, no lone surrogates, valid UTF-8."""
    return value.replace("\x00", "").encode("utf-8", errors="replace").decode("utf-8")


def extension(filename: str) -> str:
    return Path(filename).suffix.lower().lstrip(".")


def extract_sync(filename: str, payload: bytes) -> tuple[str, dict[str, Any]]:
    ext = extension(filename)
    extractor = EXTRACTORS.get(ext)
    if extractor is None:
        raise UnsupportedType(ext)
    try:
        if ext == "csv":
            content, metadata = sheets.extract_csv(payload, ext, Path(filename).stem or "Sheet1")
        else:
            content, metadata = extractor(payload, ext)
    except ExtractionError:
        raise
    except MemoryError:
        raise ParseFailure(ext.upper(), "the file needs more memory than allowed") from None
    except Exception as exc:  # noqa: BLE001 - a parser's own failure on a bad file
        raise ParseFailure(ext.upper(), f"{type(exc).__name__}: {exc}"[:300]) from None
    return clean(content), metadata


def extract_path(path: str, filename: str) -> tuple[str, dict[str, Any]]:
    return extract_sync(filename, Path(path).read_bytes())


def extract_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    path = Path(path)
    return extract_sync(path.name, path.read_bytes())


async def extract_bytes(filename: str, payload: bytes) -> tuple[str, dict[str, Any]]:
    """Extract in a worker process, under the sandbox's time limit."""
    from parley.extract.sandbox import default_sandbox

    return await default_sandbox().run_bytes(filename, payload)
