"""What an upstream's failure becomes for Parley's caller, the same way for every vendor.

Each vendor module reads its own error body into a message (and, for errors inside a stream,
the HTTP status the error type stands for); this module decides what the caller sees:

- 400, 413, 422: the request itself was wrong: 400 ``invalid_request_error`` with the vendor's
  message (and its ``code``/``param`` when it gives them), so the caller can fix it.
- 401, 402, 403, 404: the vendor refuses *Parley's* key, account or model name: the operator's
  configuration fault, not the caller's. A 502 that names nothing internal (upstream model,
  base URL); the details go to the server log instead.
- 429: 429 ``rate_limit_exceeded`` with the vendor's ``Retry-After`` passed on.
- 529 (Anthropic's "overloaded"): 503, so clients back off and retry.
- other 5xx: 502. Timeouts (providers/http.py): 504.

Failures another attempt may not hit (429, 529, 5xx, 408, and connection failures and timeouts
in providers/http.py) carry ``retryable = True`` for the router, which then tries another
deployment before the caller sees anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson

from parley.errors import ParleyError, UpstreamError

log = logging.getLogger("parley.upstream")

_CALLERS_FAULT = {400, 413, 422}
_CONFIG_FAULT = {401, 402, 403, 404}  # 402: the server's own account has no credit


class UpstreamBadRequest(ParleyError):
    status = 400
    type = "invalid_request_error"
    code = None


class UpstreamRateLimited(ParleyError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


def retryable(exc: ParleyError) -> ParleyError:
    """Mark a failure that another attempt (or another deployment) may well not hit."""
    exc.retryable = True  # type: ignore[attr-defined]
    return exc


def is_retryable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retryable", False))


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
    """The vendor's ``Retry-After`` (seconds or an HTTP date), passed on as it came."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    return value.strip() if value and value.strip() else None


def failure(
    provider: str,
    status: int,
    message: str,
    retry_after: str | None = None,
    *,
    code: str | None = None,
    param: str | None = None,
) -> ParleyError:
    """The error to raise for a vendor's HTTP ``status`` (>= 400) and its ``message``."""
    if status in _CALLERS_FAULT:
        return UpstreamBadRequest(message, param=param, code=code)
    if status == 429:
        wait = f" Retry after {retry_after} seconds." if retry_after and retry_after.isdigit() else ""
        return retryable(
            UpstreamRateLimited(
                "The model provider is rate limiting requests." + wait,
                headers={"retry-after": retry_after} if retry_after else None,
            )
        )
    if status in _CONFIG_FAULT:
        # The message may name the upstream model, account or key: logged, never sent.
        log.warning(
            "upstream refused the server's request",
            extra={"fields": {"provider": provider, "status": status, "error": message[:300]}},
        )
        # Retryable: another deployment may well be configured right.
        return retryable(
            UpstreamError(
                f"The model provider refused the server's request (HTTP {status}). "
                "This is a configuration fault on the server, not in your request."
            )
        )
    if status == 529:
        return retryable(
            UpstreamError(f"The model provider is overloaded: {message}", status=503, code="upstream_overloaded")
        )
    err = UpstreamError(f"The model provider failed (HTTP {status}): {message}")
    return retryable(err) if status >= 500 or status == 408 else err
