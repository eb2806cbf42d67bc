"""Plain text and Markdown, decoded whatever their encoding (UTF-8, BOMs, UTF-16, GBK/GB18030)."""

from __future__ import annotations

import codecs
import re
from typing import Any

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")


def _utf16_without_bom(data: bytes) -> str | None:
    """Text never holds NUL bytes, but UTF-16 writes one beside every ASCII character (commas,
    digits, newlines): NULs nearly all on one parity mean UTF-16, little- or big-endian."""
    nuls = data.count(0)
    if nuls < 2 or len(data) % 2:
        return None
    odd = data[1::2].count(0)
    if odd >= 0.9 * nuls:
        return "utf-16-le"
    if nuls - odd >= 0.9 * nuls:
        return "utf-16-be"
    return None


def decode(data: bytes) -> str:
    """Bytes → text: BOMs first, then UTF-16 without BOM, then UTF-8, then GB18030 (a GBK superset)."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    if (utf16 := _utf16_without_bom(data)) is not None:
        return data.decode(utf16, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace")


def word_count(text: str) -> int:
    """Latin words plus CJK characters (each Chinese character counts as a word, as editors count)."""
    return len(_WORD.findall(text)) + len(_CJK.findall(text))


def extract_text(data: bytes, ext: str) -> tuple[str, dict[str, Any]]:
    text = decode(data).replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return text, {"type": ext, "lineCount": len(lines), "wordCount": word_count(text)}
