"""What every request must satisfy before a handler sees it, whichever database stores it.

Text with a NUL character (U+0000) is refused with a 400 naming the field: PostgreSQL cannot
store it (in text or in JSON), SQLite can, and one policy for both means a request that works
on one works on the other. Refusing rather than stripping keeps what is stored exactly what
was sent (docs/limits.md). JSON nested deeper than ``MAX_DEPTH`` is refused too: nothing Parley
serves needs it, and stored JSON must serialize back out.

``check_body`` runs on every JSON body (``json_body``); ``nul_in_url`` guards paths and query
strings (api/entry.py); v8 tokens refuse NUL themselves (auth/v8_tokens.py).
"""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

from parley.errors import BadRequest

MAX_DEPTH = 64  # levels of objects and arrays inside one another in a JSON body
NUL = "\x00"


def _name(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


def _refuse(path: tuple[str | int, ...], problem: str) -> BadRequest:
    param = _name(path) or None
    where = f"'{param}'" if param else "the request body"
    return BadRequest(f"Invalid value for {where}: {problem}.", param=param, code="invalid_value")


def check_text(value: str, param: str) -> str:
    if NUL in value:
        raise BadRequest(
            f"Invalid value for '{param}': text may not contain NUL (\\u0000) characters.",
            param=param,
            code="invalid_value",
        )
    return value


def check_body(raw: bytes, data: Any) -> Any:
    """``data`` (parsed from ``raw``) if it holds no NUL and nests at most ``MAX_DEPTH`` deep.

    Two scans of the raw bytes (C speed) spare the walk for the usual body: JSON can carry NUL
    only as the escape ``\\u0000``, and cannot nest deeper than it has brackets."""
    if b"\\u0000" not in raw and raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return data
    # Iterative, so that a body nested a thousand levels cannot exhaust the interpreter's stack.
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                raise _refuse(path, "text may not contain NUL (\\u0000) characters")
        elif isinstance(value, dict | list):
            if len(path) >= MAX_DEPTH:
                raise _refuse(path[:MAX_DEPTH], f"JSON may nest at most {MAX_DEPTH} levels deep")
            if isinstance(value, dict):
                for key, item in value.items():
                    if NUL in key:
                        raise _refuse(path, "keys may not contain NUL (\\u0000) characters")
                    stack.append((item, (*path, key)))
            else:
                stack.extend((item, (*path, i)) for i, item in enumerate(value))
    return data


def nul_in_url(scope: Scope) -> BadRequest | None:
    """A 400 for a path or query string with an encoded NUL (%00): path ids and query values
    reach the database as they are."""
    if NUL not in scope["path"] and b"%00" not in scope["query_string"]:
        return None
    where = "path" if NUL in scope["path"] else "query string"
    return BadRequest(f"The URL's {where} may not contain NUL (%00) characters.", code="invalid_value")
