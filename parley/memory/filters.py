"""One filter compiler for list, filter and search, on SQLite and PostgreSQL alike.

``attrs`` filters follow the v8 memories API (docs/protocol.md; MongoDB where it is silent): a plain value means
equality; operators ``$gt $gte $lt $lte $ne $in $nin $contains $startsWith $endsWith $regex
$exists``; several conditions on one key, or several keys, all hold (AND); ``$and``, ``$or``
and ``$not`` combine conditions. A number is compared with numbers only and a string with
strings only, so ``{"priority": {"$gt": 5}}`` never matches the string "9". ``$ne`` and
``$nin`` match documents that lack the key. ``$contains`` ignores case. ``$regex`` is checked
by RE2 (linear time: no pattern can hang the server). Keys are bound as parameters, never
spliced into SQL; "a.b" reaches into nested objects.

Any end user may send a filter, so each one's cost is bounded before it reaches the database
(docs/limits.md): its nesting, its number of conditions, its list sizes and its pattern lengths
are capped (400 beyond), ``$in``/``$nin`` compile to one bound array per type rather than one
comparison per value, and the query runs under a time limit (``bounded``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Float,
    String,
    and_,
    any_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from parley.errors import BadRequest
from parley.storage.db import compiled_regex, sqlite_deadline
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
MAX_KEY = 200  # characters in an attribute name ("a.b" included)
MAX_DEPTH = 10  # levels of $and / $or / $not inside one another
MAX_CONDITIONS = 200  # conditions in one filter, counting every operator and every $and/$or/$not
MAX_LIST = 1000  # values in one $in / $nin list
MAX_VALUES = 10_000  # values in all the lists of one filter
MAX_PATTERN = 1000  # characters in a $regex, $contains, $startsWith, $endsWith or content_keywords
FILTER_SECONDS = 2.0  # the default time limit of one filtered query (setting ``filter_timeout``)


def _bad(message: str) -> BadRequest:
    return BadRequest(message, param="attrs")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _bindable(v: int | float) -> int | float:
    """SQLite binds integers of 64 bits at most: a larger one is compared as the float it reads as."""
    return float(v) if isinstance(v, int) and not -(2**63) <= v < 2**63 else v


def check_regex(pattern: Any) -> str:
    import re2

    if not isinstance(pattern, str):
        raise _bad("$regex needs a string pattern")
    _check_pattern("$regex", pattern)
    try:
        compiled_regex(pattern)
    except re2.error as exc:
        raise _bad(f"Invalid $regex pattern {pattern[:100]!r}: {exc}") from None
    return pattern


def _check_pattern(op: str, value: str) -> None:
    if len(value) > MAX_PATTERN:
        raise _bad(f"{op} is {len(value)} characters long; at most {MAX_PATTERN} are allowed")


class _Budget:
    """What one filter has spent so far: conditions, and values in $in/$nin lists."""

    def __init__(self) -> None:
        self.conditions = 0
        self.values = 0

    def condition(self) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise _bad(f"The filter has more than {MAX_CONDITIONS} conditions")

    def list_of(self, op: str, key: str, values: Any) -> list[Any]:
        if not isinstance(values, list):
            raise _bad(f"{op} on '{key}' needs a list")
        if len(values) > MAX_LIST:
            raise _bad(f"{op} on '{key}' has {len(values)} values; a list may hold at most {MAX_LIST}")
        self.values += len(values)
        if self.values > MAX_VALUES:
            raise _bad(f"The filter's $in/$nin lists hold more than {MAX_VALUES} values in all")
        return values


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
            value: ColumnElement[Any] = self.column.op("#>>", return_type=String)(self._path(key))  # text, not JSON
            return value
        return func.json_extract(self.column, self._path(key))

    def number(self, key: str) -> ColumnElement[Any]:
        if self.postgres:
            return case((self.kind(key) == "number", cast(self.text(key), Float)))
        return func.json_extract(self.column, self._path(key))

    def boolean(self, key: str) -> ColumnElement[Any]:
        return self.text(key) if self.postgres else func.json_type(self.column, self._path(key))

    def one_of(self, value: ColumnElement[Any], values: list[Any], numbers: bool) -> ColumnElement[bool]:
        """``value`` is one of ``values``, all bound as one parameter whatever their number:
        a PostgreSQL array (``= ANY``), a JSON array read by SQLite's ``json_each`` (measured
        beside a VALUES list: as fast at a thousand values, faster at ten thousand)."""
        if self.postgres:
            array = literal(
                [float(v) for v in values] if numbers else values, type_=ARRAY(Float if numbers else String)
            )
            return value == any_(array)
        each = func.json_each(literal(orjson.dumps(values).decode())).table_valued("value")
        return value.in_(select(each.c.value))

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
        return and_(d.kind(key) == "number", d.number(key) == _bindable(value))
    if isinstance(value, str):
        return and_(d.kind(key) == "string", d.text(key) == value)
    raise _bad(f"Cannot compare '{key}' with an object or array; use an operator")


def _any_of(d: Dialect, key: str, op: str, values: list[Any]) -> ColumnElement[bool]:
    """Equality with any of ``values``: strings and numbers each as one bound array, so the
    query's size does not grow with the list; true, false and null as plain comparisons."""
    strings: list[str] = []
    numbers: list[int | float] = []
    others: dict[Any, None] = {}  # None, True, False: at most three, in order
    for v in values:
        if isinstance(v, str):
            strings.append(v)
        elif _is_number(v):
            numbers.append(v)
        elif v is None or isinstance(v, bool):
            others[v] = None
        else:
            raise _bad(f"{op} on '{key}' may hold strings, numbers, booleans and null only")
    parts: list[ColumnElement[bool]] = []
    if strings:
        parts.append(and_(d.kind(key) == "string", d.one_of(d.text(key), strings, numbers=False)))
    if numbers:
        parts.append(and_(d.kind(key) == "number", d.one_of(d.number(key), numbers, numbers=True)))
    parts.extend(_equals(d, key, v) for v in others)
    return or_(false(), *parts)


def _compare(d: Dialect, key: str, op: str, value: Any) -> ColumnElement[bool]:
    if _is_number(value):
        target, kind, value = d.number(key), "number", _bindable(value)
    elif isinstance(value, str):
        target, kind = d.text(key), "string"
    else:
        raise _bad(f"{op} on '{key}' needs a number or a string")
    compare = {"$gt": target > value, "$gte": target >= value, "$lt": target < value, "$lte": target <= value}[op]
    return and_(d.kind(key) == kind, compare)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _condition(d: Dialect, key: str, op: str, value: Any, budget: _Budget) -> ColumnElement[bool]:
    if op not in OPERATORS:
        raise _bad(f"Unknown filter operator: {op}. Supported: {', '.join(OPERATORS[:-1])}, $and, $or, $not")
    budget.condition()
    return _definite(_leaf(d, key, op, value, budget))


def _definite(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """NULL (a missing key) becomes false, so that NOT and $ne see "absent" as "not equal"."""
    return func.coalesce(condition, false(), type_=Boolean)


def _leaf(d: Dialect, key: str, op: str, value: Any, budget: _Budget) -> ColumnElement[bool]:
    if op == "$eq":
        return _equals(d, key, value)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _compare(d, key, op, value)
    if op == "$ne":
        return not_(_definite(_equals(d, key, value)))  # true where the key is missing too
    if op in ("$in", "$nin"):
        anyof = _definite(_any_of(d, key, op, budget.list_of(op, key, value)))
        return anyof if op == "$in" else not_(anyof)
    if op == "$exists":
        if not isinstance(value, bool):
            raise _bad(f"$exists on '{key}' needs true or false")
        return d.kind(key).is_not(None) if value else d.kind(key).is_(None)
    if not isinstance(value, str):
        raise _bad(f"{op} on '{key}' needs a string")
    _check_pattern(op, value)
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


def compile_attrs(spec: Any, d: Dialect, budget: _Budget | None = None, depth: int = 0) -> ColumnElement[bool]:
    if spec is None:
        return true()
    if not isinstance(spec, dict):
        raise _bad("attrs must be an object of conditions")
    budget = budget or _Budget()
    parts: list[ColumnElement[bool]] = []
    for key, value in spec.items():
        if key in ("$and", "$or", "$not"):
            # Checked before going deeper: a filter nested thousands of levels is refused at
            # level ten, not compiled until the interpreter's recursion limit.
            if depth >= MAX_DEPTH:
                raise _bad(f"The filter nests $and, $or and $not more than {MAX_DEPTH} levels deep")
            budget.condition()
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise _bad(f"{key} needs a non-empty list of conditions")
            if len(value) > MAX_CONDITIONS:
                raise _bad(f"The filter has more than {MAX_CONDITIONS} conditions")
            subs = [compile_attrs(v, d, budget, depth + 1) for v in value]
            parts.append(and_(*subs) if key == "$and" else or_(*subs))
        elif key == "$not":
            parts.append(not_(_definite(compile_attrs(value, d, budget, depth + 1))))
        elif key.startswith("$"):
            raise _bad(f"Unknown filter operator: {key}")
        elif isinstance(value, dict) and value and all(isinstance(k, str) and k.startswith("$") for k in value):
            name = _key(key)
            parts.extend(_condition(d, name, op, v, budget) for op, v in value.items())
        else:
            budget.condition()
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
        keywords = str(keywords)
        if len(keywords) > MAX_PATTERN:
            raise BadRequest(
                f"content_keywords is {len(keywords)} characters long; at most {MAX_PATTERN} are allowed",
                param="content_keywords",
            )
        out.append(MemoryContent.content.ilike("%" + _escape_like(keywords) + "%", escape="\\"))
    if spec.get("attrs") is not None:
        out.append(compile_attrs(spec["attrs"], Dialect(dialect_name, MemoryContent.attrs)))
    return out


# PostgreSQL's codes for a statement cancelled by statement_timeout, and for a pattern its
# regular expression engine will not run ("invalid regular expression: … too complex").
_QUERY_CANCELED = "57014"
_INVALID_REGEX = "2201B"


@asynccontextmanager
async def bounded(db: AsyncSession, conditions: list[ColumnElement[bool]]) -> AsyncIterator[None]:
    """Run the statements inside under the filter time limit (the engine's ``filter_timeout``
    execution option): a filter that runs longer, or one the database refuses to run, is a 400.
    Without conditions there is nothing to bound."""
    if not conditions:
        yield
        return
    conn = await db.connection()
    seconds = float(conn.sync_engine.get_execution_options().get("parley_filter_seconds", FILTER_SECONDS))
    too_slow = BadRequest(
        f"The content filter took longer than {seconds:g} s to run; make it narrower.", param="content_filter"
    )
    if conn.dialect.name != "postgresql":
        raw = await conn.get_raw_connection()
        try:
            with sqlite_deadline(raw.driver_connection, seconds):
                yield
        except DBAPIError as exc:
            if "interrupted" in str(exc.orig):
                raise too_slow from None
            raise
        return
    previous = (
        await conn.execute(
            text("SELECT current_setting('statement_timeout'), set_config('statement_timeout', :limit, true)"),
            {"limit": f"{max(1, round(seconds * 1000))}ms"},
        )
    ).scalar()
    try:
        yield
    except DBAPIError as exc:
        code = getattr(exc.orig, "sqlstate", None) or getattr(getattr(exc.orig, "__cause__", None), "sqlstate", None)
        if code == _QUERY_CANCELED:
            raise too_slow from None
        if code == _INVALID_REGEX:
            raise _bad(f"PostgreSQL cannot run this $regex: {exc.orig}") from None
        raise
    await conn.execute(text("SELECT set_config('statement_timeout', :previous, true)"), {"previous": previous})
