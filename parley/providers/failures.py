"""What a vendor's failure becomes for Parley's caller.

Each vendor module reads its own error body into a message (and, for errors inside a stream,
the HTTP status the error type stands for); this module decides what the caller sees, the
same way for every vendor:

- 400, 413, 422: the request itself was wrong: 400 ``invalid_request_error`` with the vendor's
  message, so the caller can fix it.
- 401, 402, 403, 404: the vendor refuses *Parley's* key, account or model name: a fault on the
  server, not the caller's. A 502 that names nothing internal; the details go to the log.
- 429: 429 ``rate_limit_exceeded`` with the vendor's ``Retry-After`` passed on.
- 529 (Anthropic's "overloaded"): 503, so clients back off and retry.
- other 5xx: 502.

Failures another attempt may not hit (429, 529, 5xx, and connection failures and timeouts in
providers/http.py) carry ``retryable = True`` for whoever routes between deployments.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from parley.errors import BadRequest, ParleyError, UpstreamError

log = logging.getLogger("parley.upstream")

_CALLERS_FAULT = {400, 413, 422}
_CONFIG_FAULT = {401, 402, 403, 404}  # 402: the server's own account has no credit


def retryable(exc: ParleyError) -> ParleyError:
    """Mark a failure that another attempt (or another deployment) may well not hit."""
    exc.retryable = True  # type: ignore[attr-defined]
    return exc


def retry_after(headers: Mapping[str, str]) -> str | None:
    """The vendor's ``Retry-After`` (seconds or an HTTP date), passed on as it came."""
    value = headers.get("retry-after")
    return value.strip() if value and value.strip() else None


def failure(provider: str, status: int, message: str, *, retry_after: str | None = None) -> ParleyError:
    """The error to raise for a vendor's HTTP ``status`` (>= 400) and its ``message``."""
    if status in _CALLERS_FAULT:
        return BadRequest(message, code=None)
    if status == 429:
        wait = f" Retry after {retry_after} seconds." if retry_after and retry_after.isdigit() else ""
        err = ParleyError(
            "The model provider is rate limiting requests." + wait,
            status=429,
            code="rate_limit_exceeded",
            headers={"retry-after": retry_after} if retry_after else None,
        )
        err.type = "rate_limit_error"
        return retryable(err)
    if status in _CONFIG_FAULT:
        # The message may name the upstream model, account or key: logged, never sent.
        log.warning(
            "upstream refused the server's request",
            extra={"fields": {"provider": provider, "status": status, "error": message[:300]}},
        )
        return UpstreamError(
            f"The model provider refused the server's request (HTTP {status}). "
            "This is a configuration fault on the server, not in your request."
        )
    if status == 529:
        return retryable(
            UpstreamError(f"The model provider is overloaded: {message}", status=503, code="upstream_overloaded")
        )
    err = UpstreamError(f"The model provider failed (HTTP {status}): {message}")
    return retryable(err) if status >= 500 or status == 408 else err
