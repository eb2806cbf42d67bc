"""Test files for every extractable format, made here in English and Chinese.

Legacy .doc cannot be written from Python; tests/data/*.doc were made once from the .docx that
``docx_file`` writes, with ``soffice --headless --convert-to doc`` (see tests/data/README.md).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import yaml

EN = {
    "title": "Quarterly report",
    "body": "Revenue grew by twelve percent in the third quarter.",
    "table": [["Region", "Revenue"], ["North", "120"], ["South", "95"]],
}
ZH = {
    "title": "季度报告",
    "body": "第三季度的收入增长了百分之十二，主要来自华东地区。",
    "table": [["地区", "收入"], ["华东", "120"], ["华南", "95"]],
}
DATA = Path(__file__).parent / "data"


def docx_file(lang: dict) -> bytes:
    import docx

    d = docx.Document()
    d.add_heading(lang["title"], level=1)
    d.add_paragraph(lang["body"])
    table = d.add_table(rows=0, cols=2)
    for row in lang["table"]:
        cells = table.add_row().cells
        cells[0].text, cells[1].text = row
    d.add_paragraph("End.")
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def pdf_file(lang: dict, pages: int = 2) -> bytes:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))  # a CJK font reportlab carries itself
    out = io.BytesIO()
    c = canvas.Canvas(out)
    for n in range(pages):
        c.setFont("STSong-Light", 14)
        c.drawString(72, 760, lang["title"] + f" {n + 1}")
        c.drawString(72, 730, lang["body"])
        c.showPage()
    c.save()
    return out.getvalue()


def xlsx_file(lang: dict) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = lang["title"]
    for row in lang["table"]:
        ws.append([int(v) if v.isdigit() else v for v in row])
    ws2 = book.create_sheet("Notes")
    ws2.append([lang["body"]])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def xls_file(lang: dict) -> bytes:
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    ws = book.add_sheet(lang["title"])
    for r, row in enumerate(lang["table"]):
        for c, v in enumerate(row):
            ws.write(r, c, int(v) if v.isdigit() else v)
    book.add_sheet("Notes").write(0, 0, lang["body"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_file(lang: dict, encoding: str = "utf-8") -> bytes:
    return ("\n".join(",".join(row) for row in lang["table"]) + "\n").encode(encoding)


def pptx_file(lang: dict) -> bytes:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    s1 = deck.slides.add_slide(deck.slide_layouts[1])
    s1.shapes.title.text = lang["title"]
    s1.placeholders[1].text = lang["body"]
    s2 = deck.slides.add_slide(deck.slide_layouts[5])
    s2.shapes.title.text = lang["table"][0][0]
    shape = s2.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2))
    for r, row in enumerate(lang["table"]):
        for c, v in enumerate(row):
            shape.table.cell(r, c).text = v
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def html_file(lang: dict) -> bytes:
    return f"""<!doctype html><html><head><title>{lang["title"]}</title>
<meta charset="utf-8"><meta name="description" content="{lang["body"][:10]}">
<meta property="og:title" content="{lang["title"]}"><style>body {{ color: red }}</style>
<script>var secret = "do not extract";</script></head>
<body><nav><a href="/home">Home</a> | <a href="/about">About</a></nav>
<main><h1>{lang["title"]}</h1><p>{lang["body"]}</p><p>See <a href="/more">more</a>.</p></main>
<footer>Copyright footer text</footer></body></html>""".encode()


def json_file(lang: dict) -> bytes:
    return json.dumps(
        [{"region": r[0], "revenue": r[1], "meta": {"lang": lang["title"]}} for r in lang["table"][1:]],
        ensure_ascii=False,
    ).encode()


def yaml_file(lang: dict) -> bytes:
    return yaml.safe_dump(
        {"title": lang["title"], "body": lang["body"], "rows": lang["table"]}, allow_unicode=True
    ).encode()


def md_file(lang: dict) -> bytes:
    return f"# {lang['title']}\n\n{lang['body']}\n".encode()


def doc_file(lang: dict) -> bytes:
    return (DATA / ("report-zh.doc" if lang is ZH else "report-en.doc")).read_bytes()


def zip_bomb_docx() -> bytes:
    """A .docx-shaped zip whose one member inflates to 600 MB of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as member:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(600):
                member.write(chunk)
    return out.getvalue()
