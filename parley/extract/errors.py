"""What extraction raises. The messages, and the 500 status /v8/files/extract answers them with,
are the protocol's ("Failed to parse PDF buffer: …"; see docs/protocol.md, section 4), which
v8 clients match on."""

from __future__ import annotations

from parley.extract.formats import SUPPORTED


class ExtractionError(Exception):
    """A file that could not be read (corrupt, encrypted, a bomb, too slow)."""

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # Crosses back from the parser process as a plain ExtractionError with the same message
        # (subclasses take other constructor arguments, which pickling would not replay).
        return ExtractionError, (str(self),)


class ParseFailure(ExtractionError):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"Failed to parse {kind} buffer: {reason}")


class UnsupportedType(ExtractionError):
    def __init__(self, ext: str) -> None:
        super().__init__(f"Unsupported file type: {ext}. Supported types are: {', '.join(SUPPORTED)}")
