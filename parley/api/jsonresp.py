"""JSON responses serialized with orjson (fast, and exact about what is sent).

Serialization is total: whatever a handler returns, a stored value above all, goes out. orjson
refuses integers beyond 64 bits (PostgreSQL hands back a JSON number such as 1e20 as one); such
a body is sent again through ``portable``, which writes those numbers as floats.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


def portable(data: Any) -> Any:
    """``data`` with every integer orjson cannot write as a float (or, past a float's range, as
    a string), and anything else it cannot write as its ``str``."""
    if isinstance(data, bool) or data is None or isinstance(data, str | float):
        return data
    if isinstance(data, int):
        if -(2**63) <= data < 2**64:
            return data
        try:
            return float(data)
        except OverflowError:
            return str(data)
    if isinstance(data, dict):
        return {str(k): portable(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [portable(v) for v in data]
    return data


def dumps(data: Any) -> bytes:
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError:
        return orjson.dumps(portable(data), default=str)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json", headers=headers)
