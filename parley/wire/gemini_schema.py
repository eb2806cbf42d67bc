"""JSON Schema -> the OpenAPI 3.0 subset Gemini's ``Schema`` object accepts.

Gemini refuses a request whose tool parameters or response schema use a keyword it does not
know, so a schema written for OpenAI is rewritten rather than passed on:

- ``$ref`` is replaced by the ``$defs``/``definitions`` entry it names (a recursive reference,
  which cannot be inlined, becomes a plain object);
- ``"type": ["string", "null"]`` and ``anyOf``/``oneOf`` with a ``null`` branch become
  ``nullable``; ``oneOf`` becomes ``anyOf``; ``allOf`` is merged into one schema;
- ``const`` becomes a one-value ``enum``; an enum of non-strings (Gemini's enums are strings)
  is described in ``description`` instead;
- ``required`` keeps only properties that exist; ``format`` only values Gemini knows;
- everything else Gemini's ``Schema`` lacks (``additionalProperties``, ``$schema``,
  ``strict``, ``default``, ``examples``, ``exclusiveMinimum``, ``patternProperties``…) is
  dropped.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_TYPES = {
    "string": "STRING",
    "number": "NUMBER",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
}
_FORMATS = {"STRING": {"enum", "date-time"}, "NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}}
_KEPT = ("title", "description", "pattern", "minimum", "maximum")
_KEPT_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
_MAX_DEPTH = 32


def to_gemini(schema: Any) -> Schema:
    if not isinstance(schema, dict):
        return {}
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _convert(schema, defs, (), 0)


def is_empty_object(schema: Schema) -> bool:
    """An object schema with no properties: Gemini wants no ``parameters`` at all then."""
    return not schema or (schema.get("type") == "OBJECT" and not schema.get("properties"))


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and (node.get("type") == "null" or node.get("type") == ["null"])


def _merge_all(node: Schema) -> Schema:
    merged: Schema = {k: v for k, v in node.items() if k != "allOf"}
    for part in node["allOf"]:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**(merged.get("properties") or {}), **value}
            elif key == "required":
                merged["required"] = list(dict.fromkeys([*(merged.get("required") or []), *value]))
            else:
                merged.setdefault(key, value)
    return merged


def _convert(node: Any, defs: Schema, stack: tuple[str, ...], depth: int) -> Schema:
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return {}
    if isinstance(node.get("$ref"), str):
        name = node["$ref"].rsplit("/", 1)[-1]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if name in stack or name not in defs:
            return _convert({"type": "object", **siblings}, defs, stack, depth + 1)
        return _convert({**defs[name], **siblings}, defs, (*stack, name), depth + 1)
    if isinstance(node.get("allOf"), list):
        return _convert(_merge_all(node), defs, stack, depth + 1)

    out: Schema = {}
    nullable = bool(node.get("nullable"))
    kind = node.get("type")
    if isinstance(kind, list):
        nullable = nullable or "null" in kind
        kinds = [k for k in kind if k != "null"]
        if len(kinds) > 1:
            variants = [_convert({**node, "type": k}, defs, stack, depth + 1) for k in kinds]
            return {"anyOf": variants, **({"nullable": True} if nullable else {})}
        kind = kinds[0] if kinds else "null"
    if kind == "null":
        return {"type": "STRING", "nullable": True}

    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list):
        real = [b for b in branches if not _is_null(b)]
        nullable = nullable or len(real) < len(branches)
        if len(real) == 1:  # "X or null": just X, nullable
            rest = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
            inner = _convert({**real[0], **rest}, defs, stack, depth + 1)
            return {**inner, "nullable": True} if nullable else inner
        out["anyOf"] = [_convert(b, defs, stack, depth + 1) for b in real]

    enum = node.get("enum")
    if "const" in node:
        enum = [node["const"]]
    if isinstance(enum, list) and enum:
        if all(isinstance(v, str) for v in enum):
            out["enum"] = enum
            kind = kind or "string"
        else:
            allowed = ", ".join(map(str, enum))
            node = {**node, "description": f"{node.get('description') or ''} One of: {allowed}.".strip()}

    if kind in _TYPES:
        out["type"] = _TYPES[kind]
    elif "properties" in node:
        out["type"] = "OBJECT"
    elif "items" in node:
        out["type"] = "ARRAY"
    if nullable:
        out["nullable"] = True
    for key in _KEPT:
        if key in node and node[key] is not None:
            out[key] = node[key]
    for key in _KEPT_COUNTS:
        if isinstance(node.get(key), int):
            out[key] = node[key]
    if node.get("format") in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = node["format"]

    props = node.get("properties")
    if isinstance(props, dict) and props:
        out["properties"] = {name: _convert(p, defs, stack, depth + 1) for name, p in props.items()}
        required = [r for r in node.get("required") or () if r in props]
        if required:
            out["required"] = required
    items = node.get("items")
    if isinstance(items, list):  # tuple validation: the first item's schema stands for all
        items = items[0] if items else None
    if isinstance(items, dict):
        out["items"] = _convert(items, defs, stack, depth + 1)
    elif out.get("type") == "ARRAY":
        out["items"] = {"type": "STRING"}  # Gemini wants items on every array
    return out
