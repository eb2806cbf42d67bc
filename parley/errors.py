"""One exception family for the whole server.

The core raises these; each HTTP dialect turns them into its own error body (see api/errors.py).
"""

from __future__ import annotations


class ParleyError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
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


class UpstreamError(ParleyError):
    """The model provider failed: refused, dropped the connection or answered with an error."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"
