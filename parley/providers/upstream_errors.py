"""What an upstream's HTTP failure becomes for Parley's caller, for every provider.

OpenAI's clients act on the status: a 400 is the caller's to fix, a 429 means wait
(``Retry-After``) and retry, a 5xx means retry later. An upstream that refuses *Parley* itself
(401, 403, 404: a wrong upstream key or model name) is the operator's configuration fault, not
the caller's: a 502 whose message names nothing internal (upstream model, base URL); the
details go to the server log instead.

A provider reads its vendor's error body into (status, message, retry_after) and calls
``failure``; ``openai_message`` reads OpenAI's error shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson

from parley.errors import ParleyError, UpstreamError

log = logging.getLogger("parley.upstream")

_CALLERS_FAULT = {400, 413, 422}  # the request itself was wrong (too long, bad field): 400
_CONFIG_FAULT = {401, 403, 404}  # the upstream refuses Parley's key or model name: 502


class UpstreamBadRequest(ParleyError):
    status = 400
    type = "invalid_request_error"
    code = None


class UpstreamRateLimited(ParleyError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


def openai_message(status: int, body: bytes) -> tuple[str, str | None, str | None]:
    """(message, code, param) from an OpenAI-shaped error body, or its first bytes as text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and err.get("message"):
        code, param = err.get("code"), err.get("param")
        return str(err["message"]), code if isinstance(code, str) else None, param if isinstance(param, str) else None
    if isinstance(err, str) and err:
        return err, None, None
    return body[:300].decode("utf-8", "replace").strip() or f"HTTP {status}", None, None


def retry_after(headers: Mapping[str, str]) -> str | None:
    """The upstream's ``Retry-After`` (seconds or an HTTP date), passed on as it came."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    return value.strip() if value and value.strip() else None


def failure(
    provider: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    retry_after: str | None = None,
) -> ParleyError:
    """The error to raise for an upstream's HTTP ``status`` (>= 400) with its ``message``."""
    if status in _CALLERS_FAULT:
        return UpstreamBadRequest(message, param=param, code=code)
    if status == 429:
        wait = f" Retry after {retry_after} seconds." if retry_after and retry_after.isdigit() else ""
        return UpstreamRateLimited(
            "The model provider is rate limiting requests." + wait,
            headers={"retry-after": retry_after} if retry_after else None,
        )
    if status in _CONFIG_FAULT:
        # The message may name the upstream model, account or URL: logged, never sent.
        log.warning(
            "upstream refused the server's request",
            extra={"fields": {"provider": provider, "status": status, "error": message[:300]}},
        )
        return UpstreamError(
            f"The model provider refused the server's request (HTTP {status}). "
            "This is a configuration fault on the server, not in your request."
        )
    return UpstreamError(f"The model provider failed (HTTP {status}): {message}")
