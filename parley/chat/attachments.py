"""v8 message attachments → what the model sees.

``image`` becomes an image content part (the URL or data URI is passed on as given, once it is
known to be a valid data URI or a public http(s) URL: a provider that fetches it may sit inside
the host's network, so it is refused what the document fetcher refuses);
``document`` is fetched (or decoded from a data URI) and its text extracted and added to the
turn; ``audio`` becomes an ``input_audio`` part; ``text`` is inline text. What is fetched or
extracted is stored with the message, so later turns need not fetch again.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, model_validator

from parley.chat.fetch import check_url, fetch
from parley.errors import BadRequest
from parley.extract import extract_bytes

MAX_FETCH = 20 * 1024 * 1024
MAX_DOCUMENT_CHARS = 200_000
AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/mpeg": "mp3", "audio/mp3": "mp3"}


class Attachment(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["image", "document", "file", "audio", "text"]
    url: str | None = None
    content: str | None = None  # inline text for ``text``
    name: str | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _has_source(self) -> Attachment:
        if self.type == "text" and self.content is None:
            raise ValueError("a text attachment needs 'content'")
        if self.type != "text" and not self.url:
            raise ValueError(f"an {self.type} attachment needs 'url' (http(s) or a data: URI)")
        return self


def _data_uri(url: str) -> tuple[bytes, str] | None:
    if not url.startswith("data:"):
        return None
    head, _, payload = url[5:].partition(",")
    mime = head.split(";")[0]
    try:
        body = base64.b64decode(payload, validate=True) if ";base64" in head else unquote(payload).encode()
    except binascii.Error:
        raise BadRequest("An attachment's data URI is not valid base64", param="attachments") from None
    return body, mime


async def _check_image(url: str) -> None:
    """A data URI that decodes, or an http(s) URL of a public address; else a 400."""
    if _data_uri(url) is None:
        await check_url(url)


async def _load(url: str) -> tuple[bytes, str]:
    return _data_uri(url) or await fetch(url, MAX_FETCH)


def _filename(a: Attachment, mime: str) -> str:
    name = a.name or (a.metadata or {}).get("filename") or (a.metadata or {}).get("name")
    if not name and not a.url.startswith("data:"):  # type: ignore[union-attr]
        name = PurePosixPath(urlsplit(a.url).path).name  # type: ignore[arg-type]
    if not name or "." not in name:
        ext = mimetypes.guess_extension(mime.split(";")[0].strip()) if mime else None
        name = (name or "document") + (ext or ".txt")
    return name


async def prepare(items: list[Attachment]) -> list[dict[str, Any]]:
    """Resolve attachments into their stored form (with extracted text or audio data)."""
    out: list[dict[str, Any]] = []
    for a in items:
        stored = a.model_dump(exclude_none=True)
        if a.type == "image":
            await _check_image(a.url)  # type: ignore[arg-type]
        elif a.type in ("document", "file"):
            body, mime = await _load(a.url)  # type: ignore[arg-type]
            name = _filename(a, mime)
            try:
                text, _ = await extract_bytes(name, body)
            except Exception as exc:  # noqa: BLE001 - any parser failure is the client's file
                raise BadRequest(f"Could not read the document {name!r}: {exc}", param="attachments") from None
            stored.update(name=name, text=text[:MAX_DOCUMENT_CHARS])
        elif a.type == "audio":
            body, mime = await _load(a.url)  # type: ignore[arg-type]
            fmt = AUDIO_FORMATS.get(mime) or ("mp3" if (a.url or "").lower().endswith(".mp3") else "wav")
            stored.update(format=fmt, data=base64.b64encode(body).decode())
            if a.url.startswith("data:"):  # type: ignore[union-attr]
                stored.pop("url")  # the data is kept once, not twice
        out.append(stored)
    return out


def user_content(text: str | None, attachments: list[dict[str, Any]] | None) -> str | list[dict[str, Any]]:
    """A user turn as OpenAI content: a plain string, or parts when there is more than text."""
    if not attachments:
        return text or ""
    parts: list[dict[str, Any]] = []
    texts = [text] if text else []
    for a in attachments:
        if a["type"] in ("document", "file"):
            texts.append(f"[Attached document: {a.get('name', 'document')}]\n{a.get('text', '')}")
        elif a["type"] == "text":
            texts.append(a["content"])
    if texts:
        parts.append({"type": "text", "text": "\n\n".join(texts)})
    for a in attachments:
        if a["type"] == "image":
            parts.append({"type": "image_url", "image_url": {"url": a["url"]}})
        elif a["type"] == "audio":
            parts.append({"type": "input_audio", "input_audio": {"data": a["data"], "format": a["format"]}})
    if len(parts) == 1 and parts[0]["type"] == "text":
        only: str = parts[0]["text"]
        return only
    return parts
