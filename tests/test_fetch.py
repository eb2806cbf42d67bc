"""The attachment fetcher connects only to the public addresses it checked: DNS rebinding cannot
turn it toward the host's own network."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from parley.chat.fetch import check_url, fetch
from parley.errors import BadRequest, PayloadTooLarge
from tests.servers import ThreadedServer

PUBLIC = "93.184.216.34"  # a public address: the check passes it; connecting there fails, here or anywhere


class Local:
    """An HTTP server on 127.0.0.1 that records every request it gets: it must never get one."""

    def __init__(self) -> None:
        self.hits: list[str] = []

        async def anything(request: Request) -> Response:
            self.hits.append(request.url.path)
            if request.url.path == "/hop":
                return RedirectResponse("/landed", status_code=302)
            return PlainTextResponse("host=" + request.headers["host"])

        self.app = Starlette(routes=[Route("/{path:path}", anything)])


@pytest.fixture
def local() -> Iterator[tuple[Local, int]]:
    server = Local()
    with ThreadedServer(server.app) as running:
        yield server, running.port


class RebindingDNS:
    """getaddrinfo for made-up names: each name answers its list of addresses in turn, one per lookup."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if isinstance(host, bytes):
                host = host.decode()
            if host not in self.answers:
                return real(host, port, *args, **kwargs)
            self.lookups.append(host)
            seen = self.lookups.count(host)
            address = self.answers[host][min(seen, len(self.answers[host])) - 1]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def refused(coro) -> str:
    with pytest.raises(BadRequest) as info:
        asyncio.run(coro)
    assert info.value.status == 400 and info.value.param == "attachments"
    return info.value.message


def test_a_name_that_rebinds_to_loopback_never_reaches_it(monkeypatch, local):
    server, port = local
    dns = RebindingDNS(monkeypatch, {"rebind.test": [PUBLIC, "127.0.0.1"]})
    # The first lookup answers a public address, every later one 127.0.0.1. One fetch looks the
    # name up once and connects where that answer said (which fails: nothing listens there).
    assert "local or private" not in refused(fetch(f"http://rebind.test:{port}/secret", 1000, seconds=5))
    assert dns.lookups == ["rebind.test"]
    # The next fetch gets the loopback answer and refuses it.
    assert "local or private" in refused(fetch(f"http://rebind.test:{port}/secret", 1000, seconds=5))
    assert server.hits == []


def test_a_checked_url_that_rebinds_before_the_fetch_is_refused(monkeypatch, local):
    server, port = local
    dns = RebindingDNS(monkeypatch, {"later.test": [PUBLIC, "127.0.0.1"]})
    asyncio.run(check_url(f"http://later.test:{port}/secret"))  # public when checked
    assert "local or private" in refused(fetch(f"http://later.test:{port}/secret", 1000, seconds=5))
    assert dns.lookups == ["later.test", "later.test"] and server.hits == []


def test_a_name_answering_loopback_first_is_refused_before_connecting(monkeypatch, local):
    server, port = local
    RebindingDNS(monkeypatch, {"inside.test": ["127.0.0.1", PUBLIC]})
    assert "local or private" in refused(fetch(f"http://inside.test:{port}/secret", 1000, seconds=5))
    assert server.hits == []


def test_check_url_refuses_without_fetching(monkeypatch, local):
    server, port = local
    RebindingDNS(monkeypatch, {"metadata.test": ["169.254.169.254"], "mapped.test": ["::ffff:127.0.0.1"]})
    for url in (
        f"http://127.0.0.1:{port}/secret",
        "http://[::1]/x",
        "http://metadata.test/latest",
        "http://mapped.test/",
        "http://10.1.2.3/",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "http:///no-host",
    ):
        with pytest.raises(BadRequest):
            asyncio.run(check_url(url))
    assert server.hits == []


def test_what_passes_is_fetched_by_name_through_redirects_and_size_bounded(monkeypatch, local):
    # Here loopback stands in for a public server: the address policy is switched off for this
    # test only, to see the rest of the fetch (Host header, redirects, the size bound) work.
    import parley.chat.fetch as fetcher

    server, port = local
    RebindingDNS(monkeypatch, {"files.test": ["127.0.0.1"]})
    monkeypatch.setattr(fetcher, "_public", lambda address: True)
    body, content_type = asyncio.run(fetch(f"http://files.test:{port}/hop", 1000, seconds=5))
    assert body == f"host=files.test:{port}".encode()  # the name, not the address, in the Host header
    assert content_type.startswith("text/plain")
    assert server.hits[-2:] == ["/hop", "/landed"]
    with pytest.raises(PayloadTooLarge):
        asyncio.run(fetch(f"http://files.test:{port}/big", 5, seconds=5))
