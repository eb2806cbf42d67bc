"""One filter compiler for list, filter and search, on SQLite and PostgreSQL alike.

``attrs`` filters follow seed 003 (and MongoDB where it is silent): a plain value means
equality; operators ``$gt $gte $lt $lte $ne $in $nin $contains $startsWith $endsWith $regex
$exists``; several conditions on one key, or several keys, all hold (AND); ``$and``, ``$or``
and ``$not`` combine conditions. A number is compared with numbers only and a string with
strings only, so ``{"priority": {"$gt": 5}}`` never matches the string "9". ``$ne`` and
``$nin`` match documents that lack the key. ``$contains`` ignores case. ``$regex`` is checked
by RE2 (linear time: no pattern can hang the server). Keys are bound as parameters, never
spliced into SQL; "a.b" reaches into nested objects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Float, String, and_, case, cast, false, func, literal, not_, or_, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from parley.errors import BadRequest
from parley.storage.models import MemoryContent

OPERATORS = (
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$ne",
    "$in",
    "$nin",
    "$contains",
    "$startsWith",
    "$endsWith",
    "$regex",
    "$exists",
    "$eq",
)
MAX_KEY = 200


def _bad(message: str) -> BadRequest:
    return BadRequest(message, param="attrs")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_regex(pattern: Any) -> str:
    import re2

    if not isinstance(pattern, str):
        raise _bad("$regex needs a string pattern")
    try:
        re2.compile(pattern)
    except re2.error as exc:
        raise _bad(f"Invalid $regex pattern {pattern!r}: {exc}") from None
    return pattern


class Dialect:
    """How one database reads a JSON attribute: its type, as text, as a number."""

    def __init__(self, name: str, column: Any) -> None:
        self.postgres = name == "postgresql"
        self.column = column

    def _path(self, key: str) -> Any:
        parts = key.split(".")
        if self.postgres:
            return literal(parts, type_=_text_array())
        return literal("$" + "".join('."' + p.replace('"', '""') + '"' for p in parts))

    def kind(self, key: str) -> ColumnElement[Any]:
        """'number', 'string', 'boolean', 'null', 'object', 'array', or NULL when absent."""
        if self.postgres:
            return func.jsonb_typeof(self.column.op("#>")(self._path(key)))
        t = func.json_type(self.column, self._path(key))
        return case(
            (t.in_(["integer", "real"]), "number"),
            (t == "text", "string"),
            (t.in_(["true", "false"]), "boolean"),
            else_=t,
        )

    def text(self, key: str) -> ColumnElement[Any]:
        if self.postgres:
            return self.column.op("#>>")(self._path(key))
        return func.json_extract(self.column, self._path(key))

    def number(self, key: str) -> ColumnElement[Any]:
        if self.postgres:
            return case((self.kind(key) == "number", cast(self.text(key), Float)))
        return func.json_extract(self.column, self._path(key))

    def boolean(self, key: str) -> ColumnElement[Any]:
        return self.text(key) if self.postgres else func.json_type(self.column, self._path(key))

    def ends_with(self, value: ColumnElement[Any], suffix: str) -> ColumnElement[bool]:
        n = len(suffix)
        if self.postgres:
            return func.right(value, n) == suffix
        return func.substr(value, -n) == suffix

    def regex(self, value: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
        if self.postgres:
            return value.op("~")(pattern)
        return func.regexp(pattern, value) == 1  # registered on each SQLite connection (storage/db.py)


def _text_array() -> Any:
    return ARRAY(String)


def _equals(d: Dialect, key: str, value: Any) -> ColumnElement[bool]:
    if value is None:
        return d.kind(key) == "null"
    if isinstance(value, bool):
        if d.postgres:
            return and_(d.kind(key) == "boolean", d.text(key) == ("true" if value else "false"))
        return d.boolean(key) == ("true" if value else "false")
    if _is_number(value):
        return and_(d.kind(key) == "number", d.number(key) == value)
    if isinstance(value, str):
        return and_(d.kind(key) == "string", d.text(key) == value)
    raise _bad(f"Cannot compare '{key}' with an object or array; use an operator")


def _compare(d: Dialect, key: str, op: str, value: Any) -> ColumnElement[bool]:
    if _is_number(value):
        target, kind = d.number(key), "number"
    elif isinstance(value, str):
        target, kind = d.text(key), "string"
    else:
        raise _bad(f"{op} on '{key}' needs a number or a string")
    compare = {"$gt": target > value, "$gte": target >= value, "$lt": target < value, "$lte": target <= value}[op]
    return and_(d.kind(key) == kind, compare)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _condition(d: Dialect, key: str, op: str, value: Any) -> ColumnElement[bool]:
    if op not in OPERATORS:
        raise _bad(f"Unknown filter operator: {op}. Supported: {', '.join(OPERATORS[:-1])}, $and, $or, $not")
    return _definite(_leaf(d, key, op, value))


def _definite(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """NULL (a missing key) becomes false, so that NOT and $ne see "absent" as "not equal"."""
    return func.coalesce(condition, false(), type_=Boolean)


def _leaf(d: Dialect, key: str, op: str, value: Any) -> ColumnElement[bool]:
    if op == "$eq":
        return _equals(d, key, value)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _compare(d, key, op, value)
    if op == "$ne":
        return not_(_definite(_equals(d, key, value)))  # true where the key is missing too
    if op in ("$in", "$nin"):
        if not isinstance(value, list):
            raise _bad(f"{op} on '{key}' needs a list")
        anyof = _definite(or_(false(), *(_equals(d, key, v) for v in value)))
        return anyof if op == "$in" else not_(anyof)
    if op == "$exists":
        if not isinstance(value, bool):
            raise _bad(f"$exists on '{key}' needs true or false")
        return d.kind(key).is_not(None) if value else d.kind(key).is_(None)
    if not isinstance(value, str):
        raise _bad(f"{op} on '{key}' needs a string")
    is_string = d.kind(key) == "string"
    if op == "$contains":
        return and_(is_string, d.text(key).ilike("%" + _escape_like(value) + "%", escape="\\"))
    if op == "$startsWith":
        return and_(is_string, func.substr(d.text(key), 1, len(value)) == value)
    if op == "$endsWith":
        return and_(is_string, d.ends_with(d.text(key), value))
    return and_(is_string, d.regex(d.text(key), check_regex(value)))  # $regex


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY or any(ord(c) < 32 for c in key):
        raise _bad(f"Invalid attribute name: {str(key)[:50]!r}")
    return key


def compile_attrs(spec: Any, d: Dialect) -> ColumnElement[bool]:
    if spec is None:
        return true()
    if not isinstance(spec, dict):
        raise _bad("attrs must be an object of conditions")
    parts: list[ColumnElement[bool]] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise _bad(f"{key} needs a non-empty list of conditions")
            subs = [compile_attrs(v, d) for v in value]
            parts.append(and_(*subs) if key == "$and" else or_(*subs))
        elif key == "$not":
            parts.append(not_(_definite(compile_attrs(value, d))))
        elif key.startswith("$"):
            raise _bad(f"Unknown filter operator: {key}")
        elif isinstance(value, dict) and value and all(isinstance(k, str) and k.startswith("$") for k in value):
            name = _key(key)
            parts.extend(_condition(d, name, op, v) for op, v in value.items())
        else:
            parts.append(_definite(_equals(d, _key(key), value)))
    return and_(true(), *parts)


def content_conditions(spec: dict[str, Any] | None, dialect_name: str) -> list[ColumnElement[bool]]:
    """``content_type`` (exact), ``content_keywords`` (substring, any case) and ``attrs``."""
    if not spec:
        return []
    if not isinstance(spec, dict):
        raise BadRequest("content_filter must be an object", param="content_filter")
    unknown = set(spec) - {"content_type", "content_keywords", "attrs"}
    if unknown:
        raise BadRequest(f"Unknown content_filter field: {sorted(unknown)[0]}", param="content_filter")
    out: list[ColumnElement[bool]] = []
    if (kind := spec.get("content_type")) is not None:
        out.append(MemoryContent.content_type == str(kind))
    if keywords := spec.get("content_keywords"):
        out.append(MemoryContent.content.ilike("%" + _escape_like(str(keywords)) + "%", escape="\\"))
    if spec.get("attrs") is not None:
        out.append(compile_attrs(spec["attrs"], Dialect(dialect_name, MemoryContent.attrs)))
    return out
