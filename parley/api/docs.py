"""Request bodies in the OpenAPI document (/docs).

The routers read raw JSON and validate it themselves (for speed on the gateway's hot path and
for each dialect's own error wording), so FastAPI cannot see their body models. ``body(Model)``
describes one for the docs, and ``install`` adds the models' schemas to the document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

_SCHEMAS: dict[str, Any] = {}


def body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    _SCHEMAS.update(schema.pop("$defs", {}))
    _SCHEMAS[model.__name__] = schema
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": ref}}}}


def upload(field: str) -> dict[str, Any]:
    """A multipart body with one file field."""
    schema = {"type": "object", "properties": {field: {"type": "string", "format": "binary"}}, "required": [field]}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def install(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(_SCHEMAS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
