"""JSON and YAML: pretty text, with the shape of the document as metadata."""

from __future__ import annotations

import json
from typing import Any

import orjson
import yaml

from parley.extract.errors import ExtractionError
from parley.extract.text import decode

# libyaml's C parser when PyYAML was built with it (the wheels are): ten times faster, just as safe.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _depth(value: Any) -> int:
    """Nesting depth: a scalar is 0, [] or {} is 1, [{}] is 2, and so on."""
    depth, stack = 0, [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            level += 1
            depth = max(depth, level)
            stack.extend((child, level) for child in (node.values() if isinstance(node, dict) else node))
    return depth


def _keys(value: Any) -> list[str]:
    """The object's keys; for an array, the keys its objects use, in order of first appearance."""
    if isinstance(value, dict):
        return [str(k) for k in value]
    seen: dict[str, None] = {}
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                seen.update((str(k), None) for k in item)
    return list(seen)


def _shape(value: Any, ext: str) -> dict[str, Any]:
    count = len(value) if isinstance(value, dict | list) else 1
    return {
        "type": ext,
        "isArray": isinstance(value, list),
        "keys": _keys(value),
        "itemCount": count,
        "depth": _depth(value),
    }


def extract_json(data: bytes, ext: str) -> tuple[str, dict[str, Any]]:
    try:
        value = orjson.loads(decode(data))
    except orjson.JSONDecodeError:
        value = _json_fallback(data)
    try:
        pretty = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:  # integers beyond 64 bits
        pretty = json.dumps(value, ensure_ascii=False, indent=2)
    return pretty, _shape(value, "json")


def _json_fallback(data: bytes) -> Any:
    """The standard library accepts what orjson refuses (NaN, Infinity, huge integers)."""
    try:
        return json.loads(decode(data))
    except ValueError as exc:
        raise ExtractionError(f"Failed to parse JSON: {exc}") from None


def extract_yaml(data: bytes, ext: str) -> tuple[str, dict[str, Any]]:
    text = decode(data)
    try:
        documents = list(yaml.load_all(text, Loader=SafeLoader))
    except yaml.YAMLError as exc:
        raise ExtractionError(f"Failed to parse YAML: {str(exc).splitlines()[0]}") from None
    value = documents[0] if len(documents) == 1 else documents
    return text.strip(), _shape(value, ext)
