"""Plain text and Markdown, decoded whatever their encoding (UTF-8, BOMs, UTF-16, GBK/GB18030)."""

from __future__ import annotations

import codecs
import re
from typing import Any

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")


def decode(data: bytes) -> str:
    """Bytes → text: BOMs first, then UTF-8, then UTF-16 without BOM, then GB18030 (a GBK superset)."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if len(data) >= 4 and data.count(0) > len(data) // 4:  # NULs every other byte: UTF-16
        even_nuls = data[0::2].count(0)
        return data.decode("utf-16-be" if even_nuls > len(data) // 4 else "utf-16-le", errors="replace")
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
