"""v8 tokens, as docs/protocol.md (section 3) defines them.

``ek-`` (user) or ``ak-`` (admin) + base64(JSON {hash, app_id, user_id, [user_name],
expired_time}), where hash = md5(secret + app_id + user_id + expired_time) and the secret is
the integration's ``hash_token`` (ek-) or ``admin_token`` (ak-). Expiry is in seconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import orjson

from parley.errors import Unauthorized

MAX_USER_ID = 255  # characters: conversations are stored under it
MISSING = "Missing bearer authentication in header"
INVALID = "Invalid token"


@dataclass(frozen=True)
class V8Identity:
    app_id: str
    user_id: str
    user_name: str | None
    is_admin: bool


def _js_string(value: Any) -> str:
    """What JavaScript's string concatenation makes of a JSON value (1782897155.0 → "1782897155")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def signature(secret: str, app_id: str, user_id: Any, expired_time: Any) -> str:
    message = secret + app_id + _js_string(user_id) + _js_string(expired_time)
    return hashlib.md5(message.encode()).hexdigest()  # noqa: S324 - md5 is the protocol's


def make_token(
    secret: str, app_id: str, user_id: str, expired_time: int, user_name: str | None = None, admin: bool = False
) -> str:
    payload: dict[str, Any] = {
        "hash": signature(secret, app_id, user_id, expired_time),
        "app_id": app_id,
        "user_id": user_id,
        "expired_time": expired_time,
    }
    if user_name:
        payload["user_name"] = user_name
    encoded = base64.b64encode(orjson.dumps(payload)).decode()
    return ("ak-" if admin else "ek-") + encoded


def _invalid() -> Unauthorized:
    return Unauthorized(INVALID, code="invalid_api_key")


def parse(authorization: str | None) -> tuple[bool, dict[str, Any]]:
    """Split a header into (is_admin, payload); 401 for anything malformed."""
    if not authorization or authorization[:7].lower() != "bearer " or not authorization[7:].strip():
        raise Unauthorized(MISSING, code=None)
    token = authorization[7:].strip()
    if token[:3] not in ("ek-", "ak-"):
        raise _invalid()
    raw = token[3:]
    try:
        decoded = base64.b64decode(
            raw + "=" * (-len(raw) % 4), altchars=b"-_" if ("-" in raw or "_" in raw) else None, validate=True
        )
        payload = orjson.loads(decoded)
    except (binascii.Error, ValueError):
        raise _invalid() from None
    if not isinstance(payload, dict):
        raise _invalid()
    if any(isinstance(v, str) and "\x00" in v for v in payload.values()):
        raise _invalid()  # no app or user id holds a NUL (and PostgreSQL could not even look one up)
    if len(_js_string(payload["user_id"])) > MAX_USER_ID:
        raise _invalid()  # longer than any conversation can be stored under
    for field in ("hash", "app_id", "user_id", "expired_time"):
        if payload.get(field) in (None, ""):
            raise _invalid()
    if not isinstance(payload["hash"], str) or not isinstance(payload["app_id"], str):
        raise _invalid()
    if not isinstance(payload["expired_time"], int | float) or isinstance(payload["expired_time"], bool):
        raise _invalid()
    return token.startswith("ak-"), payload


def verify(is_admin: bool, payload: dict[str, Any], secret: str | None) -> V8Identity:
    """Check the signature (constant time) and the expiry."""
    if secret is None:
        raise _invalid()
    expected = signature(secret, payload["app_id"], payload["user_id"], payload["expired_time"])
    if not hmac.compare_digest(expected.encode(), str(payload["hash"]).lower().encode()):
        raise _invalid()
    if payload["expired_time"] < time.time():
        raise _invalid()
    name = payload.get("user_name")
    return V8Identity(
        payload["app_id"], _js_string(payload["user_id"]), name if isinstance(name, str) else None, is_admin
    )
