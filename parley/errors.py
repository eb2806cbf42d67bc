"""One exception family for the whole server.

The core raises these; each HTTP dialect turns them into its own error body (see api/errors.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

_UNSET = object()


class ParleyError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: Any = _UNSET,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}  # sent on the error response (e.g. Retry-After)
        if code is not _UNSET:  # an explicit None clears the class's default code
            self.code = code
        if status is not None:
            self.status = status


class BadRequest(ParleyError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(ParleyError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(ParleyError):
    status = 403
    type = "permission_error"


class NotFound(ParleyError):
    status = 404
    type = "invalid_request_error"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(ParleyError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimited(ParleyError):
    """Over a rate limit (``rate_limit_exceeded``) or a spent budget (``insufficient_quota``):
    429 with ``Retry-After`` in whole seconds."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: float, *, kind: str = "requests", quota: bool = False) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            message,
            code="insufficient_quota" if quota else "rate_limit_exceeded",
            headers={"retry-after": str(seconds)},
        )
        self.type = "insufficient_quota" if quota else kind
        self.retry_after = seconds


class UpstreamError(ParleyError):
    """The model provider failed: refused, dropped the connection or answered with an error."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def from_validation(errors: Sequence[Any], prefix: tuple[str, ...] = ()) -> BadRequest:
    """A 400 that names the first offending field, worded as OpenAI words it."""
    err = errors[0]
    loc = prefix + tuple(p for p in err.get("loc", ()) if p not in ("body",) and not str(p).startswith("function-"))
    # Drop pydantic's union-branch labels such as 'str' or 'list[...]' from the location.
    loc = tuple(
        p
        for p in loc
        if isinstance(p, int)
        or not any(c in str(p) for c in "[]")
        and p not in ("str", "list", "dict", "int", "float", "bool")
    )
    param = _loc(loc) or None
    if err.get("type") == "missing":
        return BadRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if err.get("type") == "json_invalid":
        return BadRequest("We could not parse the JSON body of your request.", code="invalid_json")
    msg = err.get("msg", "invalid value")
    return BadRequest(f"Invalid value for '{param}': {msg}.", param=param, code="invalid_value")
