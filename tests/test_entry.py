"""The two layers in front of the routes (api/front.py, api/entry.py), driven over ASGI as
uvicorn drives them: what a plain route's exceptions become, the body limits, NUL in URLs, the
HTTP metrics and the crash answer. The dialects' own error tests cover the same paths through
a real server; these pin the edges a dialect never reaches (a status-code handler, a plain
function handler, an exception no handler takes)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Router

from parley import metrics
from parley.api.entry import Entry
from parley.api.errors import body_for
from parley.api.front import Front
from parley.api.limits import BodyLimits
from parley.api.plain import PlainRoute
from parley.errors import BadRequest, ParleyError

Message = dict[str, Any]


class Teapot(Exception):
    pass


class Unhandled(Exception):
    pass


async def _echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/json")


async def _raises(request: Request) -> Response:
    kind = request.path_params["kind"]
    if kind == "parley":
        raise BadRequest("Bad thing.", param="x")
    if kind == "status":
        raise HTTPException(418, "short and stout")
    if kind == "teapot":
        raise Teapot()
    raise Unhandled()


async def _on_parley(request: Request, exc: ParleyError) -> Response:
    return JSONResponse(body_for(request.url.path, exc), exc.status)


async def _on_418(request: Request, exc: HTTPException) -> Response:
    return JSONResponse({"status": exc.status_code}, 418)


def _on_teapot(request: Request, exc: Teapot) -> Response:  # a plain function: run in a thread
    return JSONResponse({"teapot": True}, 200)


async def _rest(scope: Any, receive: Any, send: Any) -> None:
    """What a request no plain route takes goes on to: here, a marker answer."""
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"rest"})


def _stack(prefix: str) -> Front:
    routes = [
        PlainRoute(f"{prefix}/echo", _echo, methods=["POST"]),
        PlainRoute(f"{prefix}/raise/{{kind}}", _raises, methods=["POST"]),
    ]
    handlers = {ParleyError: _on_parley, 418: _on_418, Teapot: _on_teapot}
    limits = BodyLimits(default=16, uploads=64, upload_paths=(f"{prefix}/up",))
    entry = Entry(_rest, limits=limits, routes=routes, router=Router(), handlers=handlers, timed=True)
    return Front(entry)


def _call(
    app: Front, path: str, body: bytes = b"", *, chunks: list[bytes] | None = None, headers: list[Any] | None = None
) -> tuple[int, dict[bytes, bytes], bytes]:
    path, _, query = path.partition("?")
    parts = chunks if chunks is not None else [body]
    sent: list[Message] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": headers if headers is not None else [(b"content-length", b"%d" % len(body))],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000),
    }  # fmt: skip

    async def receive() -> Message:
        if parts:
            return {"type": "http.request", "body": parts.pop(0), "more_body": bool(parts)}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body_out


@pytest.fixture
def prefix() -> str:
    return "/t" + uuid.uuid4().hex[:8]  # this test's own routes: its metric labels are its own


def test_a_plain_route_is_served_and_stamped_with_the_clients_request_id(prefix):
    app = _stack(prefix)
    status, headers, body = _call(
        app, f"{prefix}/echo", headers=[(b"content-length", b"2"), (b"x-request-id", b"mine-1")], chunks=[b"{}"]
    )
    assert (status, body, headers[b"x-request-id"]) == (200, b"{}", b"mine-1")
    status, headers, body = _call(app, f"{prefix}/other", b"{}")
    assert (status, body) == (299, b"rest")  # no plain route matched: the rest of the app answers
    assert headers[b"x-request-id"].startswith(b"req_")


def test_a_plain_routes_exceptions_go_to_the_applications_handlers(prefix):
    app = _stack(prefix)
    status, _, body = _call(app, f"{prefix}/raise/parley")
    assert status == 400
    assert orjson.loads(body) == {
        "error": {"message": "Bad thing.", "type": "invalid_request_error", "param": "x", "code": None}
    }
    assert _call(app, f"{prefix}/raise/status")[::2] == (418, b'{"status":418}')  # by its status code
    assert _call(app, f"{prefix}/raise/teapot")[::2] == (200, b'{"teapot":true}')  # a plain-function handler


def test_an_exception_no_handler_takes_is_a_500_naming_the_request(prefix, caplog):
    status, headers, body = _call(_stack(prefix), f"{prefix}/raise/other")
    rid = headers[b"x-request-id"].decode()
    assert status == 500
    assert orjson.loads(body) == {
        "error": {
            "message": f"The server had an error while processing your request. (request ID {rid})",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert [r.getMessage() for r in caplog.records if r.name == "parley.errors"] == ["unhandled error"]


def test_bodies_past_the_limit_are_refused_announced_or_counted(prefix):
    app = _stack(prefix)
    status, headers, body = _call(app, f"{prefix}/echo", b"x" * 17)
    assert (status, headers[b"connection"]) == (413, b"close")
    assert orjson.loads(body)["error"]["message"] == "The request body is larger than the limit of 16 bytes."
    # Chunked, so no length to read first: it is counted as it comes, and the route's handler answers.
    status, _, body = _call(app, f"{prefix}/echo", chunks=[b"x" * 10, b"x" * 10], headers=[])
    assert status == 413 and orjson.loads(body)["error"]["code"] == "payload_too_large"
    assert _call(app, f"{prefix}/up/x", b"x" * 64)[::2] == (299, b"rest")  # uploads have their own limit


def test_a_nul_in_the_url_is_refused_before_any_route(prefix):
    app = _stack(prefix)
    for path, where in ((f"{prefix}/echo\x00", "path"), (f"{prefix}/echo?q=a%00b", "query string")):
        status, _, body = _call(app, path, b"{}")
        assert status == 400
        assert orjson.loads(body)["error"]["message"] == f"The URL's {where} may not contain NUL (%00) characters."


def test_every_request_is_counted_by_its_route_template(prefix):
    app = _stack(prefix)
    _call(app, f"{prefix}/raise/status")
    _call(app, f"{prefix}/raise/status")
    _call(app, f"{prefix}/nowhere", b"{}")
    _call(app, f"{prefix}/echo", b"x" * 17)
    found = {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name == "parley_http_requests"
        for s in family.samples
        if s.name == "parley_http_requests_total" and s.labels["route"].startswith(("unmatched", prefix))
    }
    assert found[(f"{prefix}/raise/{{kind}}", "418")] == 2
    assert found[("unmatched", "299")] >= 1 and found[("unmatched", "413")] >= 1
