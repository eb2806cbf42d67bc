"""The OpenAPI document and the Swagger UI at /docs, served entirely by Parley (works offline).

The routers read raw JSON and validate it themselves (for speed on the gateway's hot path and
for each dialect's own error wording), so FastAPI cannot see their body models. ``body(Model)``
describes one for the docs, and ``install`` adds the models' schemas to the document, the ways
each dialect authenticates (so the Authorize button works), and the project session header.

Swagger UI's JavaScript and CSS come from the ``fastapi-swagger`` package (Swagger UI 5, which
reads OpenAPI 3.1), mounted at /docs/assets: no CDN, no network at run time.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from pydantic import BaseModel
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

_SCHEMAS: dict[str, Any] = {}
ASSETS = "/docs/assets"

SECURITY_SCHEMES: dict[str, Any] = {
    "gatewayKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A gateway key (`parley keys create`) for /v1, as `Authorization: Bearer sk-…`.",
    },
    "xApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The same gateway key in Anthropic's header style (for /v1).",
    },
    "xGoogApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-goog-api-key",
        "description": "The same gateway key in Google's header style (for /v1).",
    },
    "projectKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A project's API key (`parley projects create`) for /api/project/{projectId}/….",
    },
    "v8Token": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "ek-/ak- token",
        "description": "A v8 token: `ek-` (user) or `ak-` (admin) + base64 JSON signed with the integration's "
        "secret (`parley token --app-id … --user-id …`; see docs/protocol.md). Writes to memories need `ak-`.",
    },
}
# Which schemes each route family accepts; any one of a list's entries is enough.
_SECURITY: tuple[tuple[str, list[dict[str, list[str]]]], ...] = (
    ("/v1/", [{"gatewayKey": []}, {"xApiKey": []}, {"xGoogApiKey": []}]),
    ("/api/project/", [{"projectKey": []}]),
    ("/v8/", [{"v8Token": []}]),
)
SESSION_HEADER = {
    "name": "X-Session-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    "description": "The session to continue (IDs are scoped to the project). Unknown IDs start a new session "
    "under that ID; without one, the deprecated body field `session_id` is used, else a new session is made.",
}
_SESSION_OUT = {"X-Session-ID": {"description": "The session this turn used.", "schema": {"type": "string"}}}


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


def _annotate(paths: dict[str, Any]) -> None:
    """Security on every operation by route family; the session header on the project routes."""
    for path, item in paths.items():
        security = next((s for prefix, s in _SECURITY if path.startswith(prefix)), None)
        for method, op in item.items():
            if not isinstance(op, dict):
                continue
            if security is not None:
                op["security"] = security
            if not path.startswith("/api/project/") or method != "post":
                continue
            op.setdefault("parameters", []).append(SESSION_HEADER)  # chat and "start a session" read it
            for response in op.get("responses", {}).values():
                response.setdefault("headers", {}).update(_SESSION_OUT)


def install(app: FastAPI) -> None:
    """Needs ``FastAPI(docs_url=None, redoc_url=None)``: this module serves /docs itself."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(_SCHEMAS)
            components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
            _annotate(schema.get("paths", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(ASSETS, StaticFiles(directory=str(resources.files("fastapi_swagger.resources"))), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            # No badge from validator.swagger.io: the page makes no request beyond this server.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )
