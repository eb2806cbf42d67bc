"""Word: .docx through python-docx (paragraphs and tables in document order), legacy .doc
through catdoc (a real OLE/Word parser from Debian; it reads Chinese correctly with -d utf-8)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from typing import Any

from parley.extract import zipguard
from parley.extract.errors import ParseFailure
from parley.extract.language import detect
from parley.extract.tables import markdown


def extract_docx(data: bytes, ext: str) -> tuple[str, dict[str, Any]]:
    import io

    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    zipguard.check(data, "DOCX")
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - python-docx raises many kinds for a bad file
        raise ParseFailure("DOCX", f"the file is corrupt ({type(exc).__name__})") from None
    blocks: list[str] = []
    paragraphs = 0
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            if text:
                paragraphs += 1
                style = (item.style.name or "") if item.style is not None else ""
                if style.startswith("Heading") and style[-1:].isdigit():
                    text = "#" * min(int(style[-1]), 6) + " " + text
                blocks.append(text)
        elif isinstance(item, Table):
            table = markdown([cell.text for cell in row.cells] for row in item.rows)
            if table:
                blocks.append(table)
    text = "\n\n".join(blocks)
    return text, {"type": "docx", "paragraphCount": paragraphs, "language": detect(text)}


def extract_doc(data: bytes, ext: str) -> tuple[str, dict[str, Any]]:
    catdoc = shutil.which("catdoc")
    if catdoc is None:
        raise ParseFailure("DOC", "catdoc is not installed (apt-get install catdoc)")
    if not data.startswith(zipguard.OLE_MAGIC):
        raise ParseFailure("DOC", "not a Word 97-2003 document")
    with tempfile.NamedTemporaryFile(suffix=".doc") as f:
        f.write(data)
        f.flush()
        done = subprocess.run([catdoc, "-d", "utf-8", "-w", f.name], capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip() or "the file is corrupt"
        raise ParseFailure("DOC", reason.splitlines()[-1])
    raw = done.stdout.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    blocks, rows, paragraphs = [], [], 0
    for line in [*raw.split("\n"), ""]:
        if "\t" in line:  # catdoc writes a table row as tab-separated cells
            rows.append(line.split("\t"))
            continue
        if rows:
            blocks.append(markdown(rows))
            rows = []
        if line.strip():
            paragraphs += 1
            blocks.append(line.strip())
    text = "\n\n".join(blocks)
    return text, {"type": "doc", "paragraphCount": paragraphs, "language": detect(text)}
