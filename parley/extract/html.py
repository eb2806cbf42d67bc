"""HTML: the readable text without scripts, styles or navigation chrome; title, meta tags, links."""

from __future__ import annotations

import re
from typing import Any

from parley.extract.text import decode

CHROME = [
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "canvas",
    "iframe",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "button",
]
BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "tr",
    "br",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "table",
    "ul",
    "ol",
    "dd",
    "dt",
}
_BLANKS = re.compile(r"\n\s*\n+")
_SPACES = re.compile(r"[ \t\u00a0]+")


def extract_html(data: bytes, ext: str) -> tuple[str, dict[str, Any]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode(data), "lxml")
    title = soup.title.get_text(strip=True) if soup.title else None
    meta: dict[str, str] = {}
    for tag in soup.find_all("meta"):
        key = tag.get("name") or tag.get("property") or tag.get("http-equiv")
        if key and tag.get("content") is not None:
            meta[str(key)] = str(tag.get("content"))
    links = len(soup.find_all("a", href=True))
    for tag in soup.find_all(CHROME):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": ["navigation", "banner", "contentinfo"]}):  # type: ignore[call-overload]
        tag.decompose()
    # Inside each tag, not beside it: bs4's insert_before/after search the parent (quadratic).
    for heading in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        heading.insert(0, "\n" + "#" * int(heading.name[1]) + " ")
    for tag in soup.find_all(BLOCKS):
        tag.append("\n\n")
    body = soup.body or soup
    lines = [_SPACES.sub(" ", line).strip() for line in body.get_text().split("\n")]
    text = _BLANKS.sub("\n\n", "\n".join(lines)).strip()
    return text, {"type": ext, "title": title, "metaTags": meta, "linkCount": links}
