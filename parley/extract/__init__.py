"""Text extraction from files, one module per format family; registry.py maps extensions."""

from parley.extract.errors import ExtractionError, ParseFailure, UnsupportedType
from parley.extract.formats import SUPPORTED
from parley.extract.registry import extract_bytes, extract_file, extract_sync

__all__ = [
    "SUPPORTED",
    "ExtractionError",
    "ParseFailure",
    "UnsupportedType",
    "extract_bytes",
    "extract_file",
    "extract_sync",
]
