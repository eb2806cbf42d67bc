"""File extraction: every format in English and Chinese, encodings, and every bad input."""

from __future__ import annotations

import asyncio
import codecs
import io
import threading
import time

import httpx
import pytest

from parley.extract import ExtractionError, UnsupportedType, extract_sync
from parley.extract.sandbox import Sandbox
from tests import fixtures as fx
from tests.conftest import cli_json

EN, ZH = fx.EN, fx.ZH
TABLE = {
    "en": "| Region | Revenue |\n|---|---|\n| North | 120 |\n| South | 95 |",
    "zh": "| 地区 | 收入 |\n|---|---|\n| 华东 | 120 |\n| 华南 | 95 |",
}
LANGS = [("en", EN), ("zh", ZH)]


@pytest.mark.parametrize(("code", "lang"), LANGS)
def test_docx(code, lang):
    text, meta = extract_sync("r.docx", fx.docx_file(lang))
    assert text == f"# {lang['title']}\n\n{lang['body']}\n\n{TABLE[code]}\n\nEnd."
    assert meta == {"type": "docx", "paragraphCount": 3, "language": code}


@pytest.mark.parametrize(("code", "lang"), LANGS)
def test_doc_through_a_real_parser(code, lang):
    text, meta = extract_sync("r.doc", fx.doc_file(lang))
    assert text == f"{lang['title']}\n\n{lang['body']}\n\n{TABLE[code]}\n\nEnd."
    assert meta == {"type": "doc", "paragraphCount": 3, "language": code}


@pytest.mark.parametrize(("code", "lang"), LANGS)
def test_pdf(code, lang):
    text, meta = extract_sync("r.pdf", fx.pdf_file(lang, pages=3))
    pages = [f"{lang['title']} {n}\n{lang['body']}" for n in (1, 2, 3)]
    assert text == "\n\n".join(pages)
    assert meta == {"type": "pdf", "pageCount": 3, "language": code}


@pytest.mark.parametrize(("code", "lang"), LANGS)
@pytest.mark.parametrize("ext", ["xlsx", "xls"])
def test_spreadsheets(code, lang, ext):
    make = fx.xlsx_file if ext == "xlsx" else fx.xls_file
    text, meta = extract_sync(f"r.{ext}", make(lang))
    notes = f"| {lang['body']} |\n|---|"
    assert text == f"## Sheet: {lang['title']}\n\n{TABLE[code]}\n\n## Sheet: Notes\n\n{notes}"
    assert meta == {"type": ext, "sheetCount": 2, "sheetNames": [lang["title"], "Notes"], "totalRows": 4}


@pytest.mark.parametrize(("code", "lang"), LANGS)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16", "utf-16-le"])
def test_csv_in_every_encoding(code, lang, encoding):
    if code == "en" and encoding != "utf-16":
        pytest.skip("ASCII reads the same in all of them")
    text, meta = extract_sync("sales.csv", fx.csv_file(lang, encoding))
    assert text == f"## Sheet: sales\n\n{TABLE[code]}"
    assert meta == {"type": "csv", "sheetCount": 1, "sheetNames": ["sales"], "totalRows": 3}


def test_csv_semicolons_and_quotes():
    text, _ = extract_sync("x.csv", b'name;note\n"Smith, J";"said ""hi"""\n')
    assert text == '## Sheet: x\n\n| name | note |\n|---|---|\n| Smith, J | said "hi" |'


@pytest.mark.parametrize(("code", "lang"), LANGS)
def test_pptx(code, lang):
    text, meta = extract_sync("deck.pptx", fx.pptx_file(lang))
    assert text == (
        f"## Slide 1\n\n{lang['title']}\n\n{lang['body']}\n\n## Slide 2\n\n{lang['table'][0][0]}\n\n{TABLE[code]}"
    )
    assert meta == {"type": "pptx", "slideCount": 2, "language": code}


@pytest.mark.parametrize(("code", "lang"), LANGS)
@pytest.mark.parametrize("ext", ["html", "htm"])
def test_html_without_scripts_styles_or_chrome(code, lang, ext):
    text, meta = extract_sync(f"page.{ext}", fx.html_file(lang))
    assert text == f"# {lang['title']}\n\n{lang['body']}\n\nSee more."
    assert "secret" not in text and "color" not in text and "Home" not in text and "footer" not in text
    assert meta == {
        "type": ext,
        "title": lang["title"],
        "linkCount": 3,
        "metaTags": {"description": lang["body"][:10], "og:title": lang["title"]},
    }


@pytest.mark.parametrize(("code", "lang"), LANGS)
def test_json(code, lang):
    text, meta = extract_sync("d.json", fx.json_file(lang))
    assert lang["table"][1][0] in text
    assert meta == {"type": "json", "isArray": True, "keys": ["region", "revenue", "meta"], "itemCount": 2, "depth": 3}


@pytest.mark.parametrize("ext", ["yaml", "yml"])
def test_yaml(ext):
    text, meta = extract_sync(f"d.{ext}", fx.yaml_file(ZH))
    assert ZH["body"] in text
    assert meta == {"type": ext, "isArray": False, "keys": ["body", "rows", "title"], "itemCount": 3, "depth": 3}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("ext", ["txt", "md"])
def test_text_encodings(encoding, ext):
    source = "第一行：你好，世界\nSecond line has five words\n"
    text, meta = extract_sync(f"n.{ext}", source.encode(encoding))
    assert text == source
    assert meta == {"type": ext, "lineCount": 2, "wordCount": 7 + 5}


def test_output_is_clean_for_postgres():
    text, _ = extract_sync("n.txt", b"a\x00b\xff\xfe")
    assert "\x00" not in text
    text.encode("utf-8")


@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        ("bad.pdf", b"%PDF-1.4 this is not really a pdf", "Failed to parse PDF buffer: Invalid PDF format"),
        ("bad.docx", b"PK\x03\x04 broken zip", "Failed to parse DOCX buffer: the file is corrupt"),
        ("bad.xlsx", b"not a zip at all", "Failed to parse XLSX buffer: the file is corrupt"),
        ("bad.pptx", b"not a zip at all", "Failed to parse PPTX buffer: the file is corrupt"),
        ("bad.xls", b"not an xls", "Failed to parse XLS buffer: the file is corrupt"),
        ("bad.doc", b"not an OLE file", "Failed to parse DOC buffer: not a Word 97-2003 document"),
        (
            "locked.docx",
            codecs.decode("d0cf11e0a1b11ae1", "hex") + b"\0" * 504,
            "Failed to parse DOCX buffer: the document is encrypted",
        ),
        ("bad.json", b'{"a": ', "Failed to parse JSON"),
        ("bad.yaml", b"a: [1, 2", "Failed to parse YAML"),
    ],
)
def test_corrupt_files_fail_clearly(name, payload, message):
    with pytest.raises(ExtractionError) as info:
        extract_sync(name, payload)
    assert str(info.value).startswith(message)


def test_encrypted_pdf():
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    c = canvas.Canvas(out, encrypt="secret")
    c.drawString(72, 720, "hidden")
    c.save()
    with pytest.raises(ExtractionError, match="Failed to parse PDF buffer: the PDF is encrypted"):
        extract_sync("locked.pdf", out.getvalue())


def test_zip_bomb_is_refused_before_inflating():
    import tracemalloc

    bomb = fx.zip_bomb_docx()
    tracemalloc.start()
    try:
        with pytest.raises(ExtractionError, match="zip bomb"):
            extract_sync("bomb.docx", bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024  # refused from the archive's directory: nothing was inflated


def test_unsupported_extension_message():
    with pytest.raises(UnsupportedType) as info:
        extract_sync("x.abc", b"data")
    assert str(info.value) == (
        "Unsupported file type: abc. Supported types are: pdf, csv, docx, doc, txt, md, xlsx, "
        "xls, pptx, html, htm, json, yaml, yml"
    )


BILLION_LAUGHS = b"\n".join(
    [b"a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]".encode()
        for i in range(9)
    ]
)


def test_sandbox_time_limit_stops_a_pathological_file():
    sandbox = Sandbox(workers=1, seconds=2)
    try:
        started = time.monotonic()
        with pytest.raises(ExtractionError, match="took longer than 2s"):
            asyncio.run(sandbox.run_bytes("bomb.yaml", BILLION_LAUGHS))
        assert time.monotonic() - started < 10
        text, _ = asyncio.run(sandbox.run_bytes("ok.txt", b"still working"))  # a fresh worker takes over
        assert text == "still working"
    finally:
        sandbox.close()


# --- over HTTP -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token(parley):
    from tests.v8_helpers import V8

    return V8(parley.url, cli_json(parley.database_url, "integrations", "create", "--name", "files", "--json")).token


def upload(parley, token, name, payload, field="file"):
    return httpx.post(
        parley.url + "/v8/files/extract",
        headers={"authorization": f"Bearer {token}"},
        files={field: (name, payload)},
        timeout=60,
    )


def test_http_extract_seed_shape(parley, token):
    r = upload(parley, token, "document.pdf", fx.pdf_file(ZH, pages=10))
    assert r.status_code == 200, r.text
    assert r.json()["metadata"] == {"type": "pdf", "pageCount": 10, "language": "zh"}
    assert r.json()["content"].startswith(ZH["title"] + " 1\n")


@pytest.mark.parametrize(
    ("name", "maker"),
    [
        ("a.docx", fx.docx_file),
        ("a.doc", fx.doc_file),
        ("a.xlsx", fx.xlsx_file),
        ("a.xls", fx.xls_file),
        ("a.csv", fx.csv_file),
        ("a.pptx", fx.pptx_file),
        ("a.html", fx.html_file),
        ("a.htm", fx.html_file),
        ("a.json", fx.json_file),
        ("a.yaml", fx.yaml_file),
        ("a.yml", fx.yaml_file),
        ("a.md", fx.md_file),
        ("a.txt", fx.md_file),
    ],
)
def test_http_every_format(parley, token, name, maker):
    r = upload(parley, token, name, maker(ZH))
    assert r.status_code == 200, r.text
    assert r.json()["content"] == extract_sync(name, maker(ZH))[0]
    assert r.json()["metadata"]["type"] == name.rsplit(".", 1)[1]


def test_http_errors_use_the_seeds_bodies(parley, token):
    r = httpx.post(parley.url + "/v8/files/extract", headers={"authorization": f"Bearer {token}"}, data={"other": "x"})
    assert (r.status_code, r.json()) == (400, {"error": "File is required"})
    r = upload(parley, token, "wrong-field.pdf", b"x", field="upload")
    assert (r.status_code, r.json()) == (400, {"error": "File is required"})
    assert upload(parley, token, "noextension", b"x").json() == {"error": "File extension is required"}
    r = upload(parley, token, "x.abc", b"data")
    assert r.status_code == 500
    assert r.json() == {
        "error": "Unsupported file type: abc. Supported types are: pdf, csv, docx, doc, txt, md, "
        "xlsx, xls, pptx, html, htm, json, yaml, yml"
    }
    r = upload(parley, token, "bad.pdf", b"%PDF-1.4 garbage")
    assert (r.status_code, r.json()) == (500, {"error": "Failed to parse PDF buffer: Invalid PDF format"})
    assert upload(parley, token, "empty.txt", b"").json() == {"error": "File is empty"}
    r = upload(parley, token, "bad.json", b"{nope")
    assert r.status_code == 500 and r.json()["error"].startswith("Failed to parse JSON")
    r = upload(parley, token, "bomb.docx", fx.zip_bomb_docx())
    assert r.status_code == 500 and "zip bomb" in r.json()["error"]
    r = httpx.post(parley.url + "/v8/files/extract", files={"file": ("a.txt", b"x")})
    assert r.status_code == 401


def test_http_oversize_upload_is_413(parley, token):
    r = upload(parley, token, "big.txt", b"a" * (3 * 1024 * 1024))  # the test server allows 2 MiB
    assert r.status_code == 413


def test_http_pathological_file_is_an_error_and_others_keep_being_served(parley, token):
    result: dict = {}

    def slow() -> None:
        result["r"] = upload(parley, token, "bomb.yaml", BILLION_LAUGHS)

    worker = threading.Thread(target=slow)
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    assert httpx.get(parley.url + "/healthz").status_code == 200
    # Parsing is off the event loop: were it on it, /healthz would wait for the parse to reach
    # its 5 s limit (4.5 s more). 3 s leaves a busy machine room and still tells the two apart.
    assert time.monotonic() - started < 3
    worker.join(30)
    assert result["r"].status_code == 500 and "took longer than 5s" in result["r"].json()["error"]
    assert upload(parley, token, "ok.txt", "好".encode()).json()["content"] == "好"


def test_cli_extract(parley, tmp_path):
    from tests.conftest import cli

    path = tmp_path / "report.docx"
    path.write_bytes(fx.docx_file(ZH))
    done = cli(parley.database_url, "extract", str(path), "--json")
    assert done.returncode == 0, done.stderr
    assert '"paragraphCount":3' in done.stdout
