"""Fetching a URL a client gave us, safely: bounded in size and time, and never toward
loopback, link-local, private or otherwise non-public addresses (no SSRF into the host's network)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import httpx

from parley.errors import BadRequest, PayloadTooLarge

MAX_REDIRECTS = 3


async def _check_host(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"Only http(s) URLs can be fetched, not {url[:60]!r}", param="attachments")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        raise BadRequest(f"Cannot resolve the host of {url[:100]!r}", param="attachments") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise BadRequest("Attachment URLs may not point to local or private addresses", param="attachments")


async def fetch(url: str, max_bytes: int, seconds: float = 15.0) -> tuple[bytes, str]:
    """Return (body, content type). Redirects are followed by hand, each target checked again."""
    async with httpx.AsyncClient(timeout=seconds, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            await _check_host(url)
            try:
                async with asyncio.timeout(seconds), client.stream("GET", url) as response:
                    if response.is_redirect and (target := response.headers.get("location")):
                        url = urljoin(url, target)
                        continue
                    if response.status_code >= 400:
                        raise BadRequest(
                            f"Fetching {url[:100]!r} failed with HTTP {response.status_code}", param="attachments"
                        )
                    body = bytearray()
                    async for part in response.aiter_bytes():
                        body += part
                        if len(body) > max_bytes:
                            raise PayloadTooLarge(f"The attachment at {url[:100]!r} is larger than {max_bytes} bytes")
                    return bytes(body), response.headers.get("content-type", "")
            except (TimeoutError, httpx.HTTPError):
                raise BadRequest(f"Fetching {url[:100]!r} failed or took too long", param="attachments") from None
    raise BadRequest("Too many redirects", param="attachments")
