"""Fetching a URL a client gave us, safely: bounded in size and time, and never toward
loopback, link-local, private or otherwise non-public addresses (no SSRF into the host's network).

The check and the connection use the same answer: the HTTP client's resolver itself refuses a
name that resolves to a non-public address, and connects to exactly the addresses it checked.
Checking first and letting the client resolve again would let a name answer with a public
address to the check and 127.0.0.1 to the connection (DNS rebinding). The URL keeps its name,
so TLS verifies the certificate for it (SNI) and the Host header names it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from parley.errors import BadRequest, PayloadTooLarge

MAX_REDIRECTS = 3
_REDIRECTS = {301, 302, 303, 307, 308}
_PRIVATE = "Attachment URLs may not point to local or private addresses"


class RefusedAddress(OSError):
    """A name resolved to an address no fetch may reach."""


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip.is_global and not ip.is_multicast


class PublicResolver(ThreadedResolver):
    """aiohttp's resolver, refusing any name with a non-public address among its answers."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        if not found or not all(_public(r["host"]) for r in found):
            raise RefusedAddress(f"{host} resolves to a non-public address")
        return found


def _split(url: str) -> tuple[str, int, bool]:
    """(host, port, is an IP literal); BadRequest unless http(s) with a host."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        host = port = None
    if parts.scheme not in ("http", "https") or not host:
        raise BadRequest(f"Only http(s) URLs can be fetched, not {url[:60]!r}", param="attachments")
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    return host, port or (443 if parts.scheme == "https" else 80), literal


def _check_literal(url: str) -> None:
    """Scheme, and an IP-literal host (the resolver only sees names)."""
    host, _, literal = _split(url)
    if literal and not _public(host):
        raise BadRequest(_PRIVATE, param="attachments")


async def check_url(url: str) -> None:
    """Refuse (a 400 on ``attachments``) a URL that ``fetch`` would refuse, without fetching it."""
    host, port, literal = _split(url)
    if literal:
        _check_literal(url)
        return
    try:
        await PublicResolver().resolve(host, port, socket.AF_UNSPEC)
    except RefusedAddress:
        raise BadRequest(_PRIVATE, param="attachments") from None
    except OSError:
        raise BadRequest(f"Cannot resolve the host of {url[:100]!r}", param="attachments") from None


def _connect_error(url: str, exc: aiohttp.ClientConnectorError) -> BadRequest:
    if isinstance(exc.os_error, RefusedAddress):
        return BadRequest(_PRIVATE, param="attachments")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return BadRequest(f"Cannot resolve the host of {url[:100]!r}", param="attachments")
    return BadRequest(f"Fetching {url[:100]!r} failed: cannot connect", param="attachments")


async def fetch(url: str, max_bytes: int, seconds: float = 15.0) -> tuple[bytes, str]:
    """Return (body, content type). Redirects are followed by hand, each target checked again."""
    connector = aiohttp.TCPConnector(resolver=PublicResolver(), use_dns_cache=False, force_close=True)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, trust_env=False) as session,
            asyncio.timeout(seconds),
        ):
            for _ in range(MAX_REDIRECTS + 1):
                _check_literal(url)
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in _REDIRECTS and (target := response.headers.get("location")):
                        url = urljoin(url, target)
                        continue
                    if response.status >= 400:
                        raise BadRequest(
                            f"Fetching {url[:100]!r} failed with HTTP {response.status}", param="attachments"
                        )
                    body = bytearray()
                    async for part in response.content.iter_chunked(64 * 1024):
                        body += part
                        if len(body) > max_bytes:
                            raise PayloadTooLarge(f"The attachment at {url[:100]!r} is larger than {max_bytes} bytes")
                    return bytes(body), response.headers.get("content-type", "")
    except aiohttp.ClientConnectorError as exc:
        raise _connect_error(url, exc) from None
    except (TimeoutError, aiohttp.ClientError, ValueError):
        raise BadRequest(f"Fetching {url[:100]!r} failed or took too long", param="attachments") from None
    raise BadRequest("Too many redirects", param="attachments")
