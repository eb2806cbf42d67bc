"""The 400s a Responses request gets, worded as OpenAI words them, naming the field."""

from __future__ import annotations

from typing import Any

from parley.errors import BadRequest

Body = dict[str, Any]


def unsupported(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param, code="unsupported_parameter")


def invalid(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param, code="invalid_value")


def missing(param: str) -> BadRequest:
    return BadRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def check_keys(obj: Body, allowed: set[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise BadRequest(f"Unknown parameter: '{where}.{key}'.", param=f"{where}.{key}", code="unknown_parameter")


def text_field(part: Body, key: str, where: str) -> str:
    value = part.get(key)
    if not isinstance(value, str):
        raise (
            missing(f"{where}.{key}")
            if value is None
            else invalid(f"Invalid value for '{where}.{key}': expected a string.", f"{where}.{key}")
        )
    return value
