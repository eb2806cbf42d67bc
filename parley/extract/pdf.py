"""PDF through PDFium (pypdfium2): fast, and its text follows the page's reading order."""

from __future__ import annotations

from typing import Any

from parley.extract.errors import ParseFailure
from parley.extract.language import detect


def extract_pdf(data: bytes, ext: str) -> tuple[str, dict[str, Any]]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        reason = "the PDF is encrypted" if "password" in str(exc).lower() else "Invalid PDF format"
        raise ParseFailure("PDF", reason) from None
    try:
        pages = []
        for page in pdf:
            textpage = page.get_textpage()
            pages.append(textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n").strip())
            textpage.close()
            page.close()
        count = len(pdf)
    finally:
        pdf.close()
    text = "\n\n".join(p for p in pages if p)
    return text, {"type": "pdf", "pageCount": count, "language": detect(text)}
