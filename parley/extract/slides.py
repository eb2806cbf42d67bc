"""PowerPoint .pptx through python-pptx: each slide labelled, its text frames and tables in order."""

from __future__ import annotations

import io
from typing import Any

from parley.extract import zipguard
from parley.extract.errors import ParseFailure
from parley.extract.language import detect
from parley.extract.tables import markdown


def _shape_blocks(shape: Any) -> list[str]:
    if getattr(shape, "has_table", False) and shape.has_table:
        return [markdown([cell.text for cell in row.cells] for row in shape.table.rows)]
    if shape.shape_type is not None and hasattr(shape, "shapes"):  # a group: its members in order
        return [b for member in shape.shapes for b in _shape_blocks(member)]
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        text = "\n".join(p.text.strip() for p in shape.text_frame.paragraphs if p.text.strip())
        return [text] if text else []
    return []


def extract_pptx(data: bytes, ext: str) -> tuple[str, dict[str, Any]]:
    import pptx

    zipguard.check(data, "PPTX")
    try:
        deck = pptx.Presentation(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001
        raise ParseFailure("PPTX", f"the file is corrupt ({type(exc).__name__})") from None
    parts = []
    for number, slide in enumerate(deck.slides, 1):
        blocks = [b for shape in slide.shapes for b in _shape_blocks(shape) if b]
        if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame.text.strip()):
            blocks.append(f"Notes: {notes}")
        parts.append(f"## Slide {number}\n\n" + "\n\n".join(blocks))
    text = "\n\n".join(parts)
    return text, {"type": "pptx", "slideCount": len(deck.slides), "language": detect(text)}
