"""Extraction speed per format, next to markitdown on the same files in the same run.

    pip install 'markitdown[pdf,docx,pptx,xlsx,xls]==0.1.8'   # once, for the comparison
    python bench/extract.py

Files are generated here (Chinese and English text); each is extracted a few times and the
best time kept. Units: pages (pdf), paragraphs (docx, doc, html, md, txt), rows (xlsx, xls,
csv), slides (pptx), items (json, yaml).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import scratch  # noqa: E402

from parley.extract import extract_file  # noqa: E402

LINE = "第三季度的收入增长了百分之十二，主要来自华东地区。Revenue grew by twelve percent in Q3."


def make_files(folder: Path) -> list[tuple[Path, int, str]]:
    import docx
    import openpyxl
    import pptx
    import xlwt
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    out: list[tuple[Path, int, str]] = []
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    path = folder / "report.pdf"
    c = canvas.Canvas(str(path))
    for page in range(50):
        c.setFont("STSong-Light", 10)
        for line in range(40):
            c.drawString(40, 800 - line * 19, f"{page}.{line} {LINE}")
        c.showPage()
    c.save()
    out.append((path, 50, "pages"))

    d = docx.Document()
    for i in range(300):
        d.add_paragraph(f"{i} {LINE}")
    table = d.add_table(rows=0, cols=3)
    for i in range(100):
        cells = table.add_row().cells
        cells[0].text, cells[1].text, cells[2].text = str(i), "华东", "120"
    path = folder / "report.docx"
    d.save(str(path))
    out.append((path, 400, "paragraphs"))

    book = openpyxl.Workbook()
    ws = book.active
    for i in range(5000):
        ws.append([i, "华东", i * 1.5, LINE])
    path = folder / "sheet.xlsx"
    book.save(str(path))
    out.append((path, 5000, "rows"))

    wb = xlwt.Workbook(encoding="utf-8")
    ws = wb.add_sheet("data")
    for i in range(5000):
        for j, v in enumerate((i, "华东", i * 1.5, LINE)):
            ws.write(i, j, v)
    path = folder / "sheet.xls"
    wb.save(str(path))
    out.append((path, 5000, "rows"))

    path = folder / "table.csv"
    path.write_text("\n".join(f"{i},华东,{i * 1.5},{LINE}" for i in range(20000)), encoding="utf-8")
    out.append((path, 20000, "rows"))

    deck = pptx.Presentation()
    for i in range(40):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {i}"
        slide.placeholders[1].text = LINE
    path = folder / "deck.pptx"
    deck.save(str(path))
    out.append((path, 40, "slides"))

    path = folder / "page.html"
    body = "".join(f"<p>{i} {LINE}</p>" for i in range(2000))
    path.write_text(
        f"<html><head><title>t</title><script>x()</script></head><body><nav>menu</nav>{body}</body></html>",
        encoding="utf-8",
    )
    out.append((path, 2000, "paragraphs"))

    items = [{"id": i, "region": "华东", "text": LINE} for i in range(5000)]
    path = folder / "data.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    out.append((path, 5000, "items"))
    path = folder / "data.yaml"
    path.write_text(yaml.safe_dump(items[:2000], allow_unicode=True), encoding="utf-8")
    out.append((path, 2000, "items"))

    for ext in ("md", "txt"):
        path = folder / f"notes.{ext}"
        path.write_text("\n\n".join(f"{i} {LINE}" for i in range(5000)), encoding="utf-8")
        out.append((path, 5000, "paragraphs"))

    doc = ROOT / "tests" / "data" / "report-zh.doc"
    path = folder / "report.doc"
    path.write_bytes(doc.read_bytes())
    out.append((path, 3, "paragraphs"))
    return out


def best_of(fn, runs: int = 3) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    try:
        from markitdown import MarkItDown

        mid = MarkItDown()
    except ImportError:
        mid = None
        print("(markitdown not installed: pip install 'markitdown[pdf,docx,pptx,xlsx,xls]==0.1.8')")
    folder = scratch.folder("parley-extract-bench-")
    print(f"{'file':<14}{'units':>7} {'':<11}{'parley /s':>11}{'markitdown /s':>15}{'ratio':>8}")
    for path, units, unit in make_files(folder):
        ours = best_of(lambda p=path: extract_file(p))
        if mid is None:
            theirs = "-"
        else:
            try:
                seconds = best_of(lambda p=path: mid.convert(str(p)))
                theirs = f"{units / seconds:>15.0f}{seconds / ours:>7.1f}x"
            except Exception as exc:  # noqa: BLE001 - markitdown does not read every format
                theirs = f"n/a ({type(exc).__name__})"
        print(f"{path.name:<14}{units:>7} {unit:<11}{units / ours:>11.0f} {theirs:>14}", flush=True)


if __name__ == "__main__":
    main()
