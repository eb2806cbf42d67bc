"""Images a request links to, fetched so they can go to a vendor that takes only inline bytes.

The fetch goes through chat/fetch.py: public http(s) addresses only, bounded in size and time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from parley.chat.fetch import fetch
from parley.errors import BadRequest, ParleyError
from parley.wire.common import data_url, sniff_image

Body = dict[str, Any]
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # Gemini's limit for a whole request's inline data
FETCH_SECONDS = 15.0


def _linked_images(body: Body) -> dict[str, str]:
    """Each http(s) image URL in the messages, with where it first appears (for errors)."""
    found: dict[str, str] = {}
    for i, m in enumerate(body.get("messages") or ()):
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            url = (part.get("image_url") or {}).get("url") if part.get("type") == "image_url" else None
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                found.setdefault(url, f"messages[{i}].content[{j}].image_url.url")
    return found


async def _load(url: str, param: str) -> str:
    try:
        data, content_type = await fetch(url, MAX_IMAGE_BYTES, FETCH_SECONDS)
    except ParleyError as exc:
        exc.param = param
        raise
    mime = content_type.split(";")[0].strip().lower()
    if not mime.startswith("image/"):
        mime = sniff_image(data) or ""
    if not mime:
        raise BadRequest(f"'{param}' does not point to an image.", param=param)
    return data_url(data, mime)


async def inline_images(body: Body) -> Body:
    """The request with every http(s) image replaced by a data URL of its bytes."""
    linked = _linked_images(body)
    if not linked:
        return body
    loaded = await asyncio.gather(*(_load(url, param) for url, param in linked.items()))
    inline = dict(zip(linked, loaded, strict=True))
    messages = []
    for m in body["messages"]:
        if isinstance(m.get("content"), list):
            parts = []
            for part in m["content"]:
                url = (part.get("image_url") or {}).get("url") if part.get("type") == "image_url" else None
                if url in inline:
                    part = {**part, "image_url": {**part["image_url"], "url": inline[url]}}
                parts.append(part)
            m = {**m, "content": parts}
        messages.append(m)
    return {**body, "messages": messages}
