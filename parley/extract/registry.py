"""Which extractor reads which extension, and the one entry point every caller uses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from parley.extract import text

Extractor = Callable[[bytes, str], tuple[str, dict[str, Any]]]

# The seed's order, used verbatim in its "Unsupported file type" message.
SUPPORTED = ("pdf", "csv", "docx", "doc", "txt", "md", "xlsx", "xls", "pptx", "html", "htm", "json", "yaml", "yml")


class ExtractionError(Exception):
    """A file that could not be read (corrupt, encrypted, too big inside, too slow)."""


class UnsupportedType(ExtractionError):
    def __init__(self, ext: str) -> None:
        super().__init__(f"Unsupported file type: {ext}. Supported types are: {', '.join(SUPPORTED)}")


def _extractors() -> dict[str, Extractor]:
    return {"txt": text.extract_text, "md": text.extract_text}


def clean(value: str) -> str:
    """Safe for PostgreSQL text: no NUL characters, no lone surrogates."""
    return value.replace("\x00", "").encode("utf-8", errors="replace").decode("utf-8")


def extension(filename: str) -> str:
    return Path(filename).suffix.lower().lstrip(".")


def extract_sync(filename: str, data: bytes) -> tuple[str, dict[str, Any]]:
    ext = extension(filename)
    extractor = _extractors().get(ext)
    if extractor is None:
        raise UnsupportedType(ext)
    content, metadata = extractor(data, ext)
    return clean(content), metadata


async def extract_bytes(filename: str, data: bytes) -> tuple[str, dict[str, Any]]:
    return await asyncio.to_thread(extract_sync, filename, data)


def extract_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    path = Path(path)
    return extract_sync(path.name, path.read_bytes())
