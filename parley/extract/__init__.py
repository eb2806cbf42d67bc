"""Text extraction from files, by extension (see registry.py)."""

from parley.extract.registry import SUPPORTED, ExtractionError, UnsupportedType, extract_bytes, extract_file

__all__ = ["SUPPORTED", "ExtractionError", "UnsupportedType", "extract_bytes", "extract_file"]
