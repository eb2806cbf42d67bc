"""The ``parley`` command: serve, and manage keys, projects, integrations and memories."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import typer
from sqlalchemy.ext.asyncio import AsyncSession

from parley import integrations, projects
from parley.auth import keys, v8_tokens
from parley.auth.sealed import server_key
from parley.config import Settings, load_settings
from parley.errors import ParleyError
from parley.storage import db
from parley.storage.models import GatewayKey, ProjectKey

app = typer.Typer(help="Parley: a self-hosted AI chat backend.", no_args_is_help=True)
keys_app = typer.Typer(help="Gateway keys for /v1.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
projects_app = typer.Typer(help="Projects for the integration API.", no_args_is_help=True)
project_keys_app = typer.Typer(help="More API keys for a project.", no_args_is_help=True)
projects_app.add_typer(project_keys_app, name="keys")
app.add_typer(projects_app, name="projects")
integrations_app = typer.Typer(help="v8 integrations (tenants) and their signing secrets.", no_args_is_help=True)
app.add_typer(integrations_app, name="integrations")

T = TypeVar("T")
ConfigOpt = typer.Option(None, "--config", "-c", envvar="PARLEY_CONFIG", help="YAML config file.")


def _settings(config: str | None) -> Settings:
    return load_settings(config)


def run_db(config: str | None, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one unit of work against the configured database (migrated first).

    A ParleyError (unknown id, bad value) is printed and exits with status 1.
    """
    settings = _settings(config)

    async def main() -> T:
        await db.migrate(settings.database_url)
        engine = db.create_engine(settings.database_url)
        try:
            async with db.sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except ParleyError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


def emit(data: Any, as_json: bool, text: str) -> None:
    typer.echo(orjson.dumps(data, default=str).decode() if as_json else text)


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to bind (default from config: 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default from config: 8000)."),
    workers: int = typer.Option(1, help="Worker processes."),
    config: str | None = ConfigOpt,
) -> None:
    """Start the server (migrating the database first)."""
    import uvicorn

    from parley.logs import setup_logging

    if config:
        os.environ["PARLEY_CONFIG"] = os.path.abspath(config)
    settings = _settings(config)
    setup_logging(settings.log_level)
    asyncio.run(db.migrate(settings.database_url))
    os.environ["PARLEY_MIGRATED"] = settings.database_url
    uvicorn.run(
        "parley.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name"),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOpt,
) -> None:
    """Create a gateway key; the key is shown once and stored hashed."""
    row, key = run_db(config, lambda s: keys.create_gateway_key(s, name))
    emit(
        {"id": row.id, "name": row.name, "key": key}, as_json, f"{row.id}\t{key}\n(store it now: it is shown only once)"
    )


@keys_app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json"), config: str | None = ConfigOpt) -> None:
    """List gateway keys (prefixes only)."""
    rows = run_db(config, lambda s: keys.list_keys(s, GatewayKey))
    data = [
        {
            "id": r.id,
            "name": r.name,
            "prefix": r.key_prefix,
            "created_at": r.created_at,
            "revoked": r.revoked_at is not None,
        }
        for r in rows
    ]
    lines = [f"{d['id']}\t{d['name']}\t{d['prefix']}\t{'revoked' if d['revoked'] else 'active'}" for d in data]
    emit(data, as_json, "\n".join(lines) or "(no keys)")


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: str | None = ConfigOpt) -> None:
    """Revoke a gateway key by id."""
    row = run_db(config, lambda s: keys.revoke(s, GatewayKey, key_id))
    typer.echo(f"revoked {row.id}")


def _project_fields(
    model: str | None,
    system_prompt: str | None,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    tools_file: str | None,
    allow_model_override: bool | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "model": model,
        "system_prompt": system_prompt,
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "allow_model_override": allow_model_override,
    }
    if tools_file:
        fields["tools"] = orjson.loads(open(tools_file, "rb").read())
    return {k: v for k, v in fields.items() if v is not None}


ModelOpt = typer.Option(None, "--model", help="Public model name (default: the server's default model).")
PromptOpt = typer.Option(None, "--system-prompt")
TempOpt = typer.Option(None, "--temperature", min=0, max=2)
TopPOpt = typer.Option(None, "--top-p", min=0, max=1)
MaxTokOpt = typer.Option(None, "--max-tokens", min=1)
ToolsOpt = typer.Option(None, "--tools-file", help="JSON file with the project's default tools (OpenAI format).")
OverrideOpt = typer.Option(
    None, "--allow-model-override/--no-model-override", help="Let requests choose their own model."
)


@projects_app.command("create")
def projects_create(
    name: str = typer.Option(..., "--name"),
    model: str | None = ModelOpt,
    system_prompt: str | None = PromptOpt,
    temperature: float | None = TempOpt,
    top_p: float | None = TopPOpt,
    max_tokens: int | None = MaxTokOpt,
    tools_file: str | None = ToolsOpt,
    allow_model_override: bool | None = OverrideOpt,
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOpt,
) -> None:
    """Create a project; prints its id and first API key (shown once, stored hashed)."""
    fields = _project_fields(model, system_prompt, temperature, top_p, max_tokens, tools_file, allow_model_override)
    project, key = run_db(config, lambda s: projects.create(s, name, **fields))
    emit(
        {"id": project.id, "name": project.name, "api_key": key},
        as_json,
        f"{project.id}\t{key}\n(store the key now: it is shown only once)",
    )


@projects_app.command("list")
def projects_list(as_json: bool = typer.Option(False, "--json"), config: str | None = ConfigOpt) -> None:
    """List projects."""
    rows = [projects.as_dict(p) for p in run_db(config, projects.list_all)]
    emit(
        rows,
        as_json,
        "\n".join(f"{p['id']}\t{p['name']}\t{p['model'] or '(default model)'}" for p in rows) or "(no projects)",
    )


@projects_app.command("show")
def projects_show(project_id: str, config: str | None = ConfigOpt) -> None:
    """Show one project as JSON."""
    emit(projects.as_dict(run_db(config, lambda s: projects.get(s, project_id))), True, "")


@projects_app.command("update")
def projects_update(
    project_id: str,
    name: str | None = typer.Option(None, "--name"),
    model: str | None = ModelOpt,
    system_prompt: str | None = PromptOpt,
    temperature: float | None = TempOpt,
    top_p: float | None = TopPOpt,
    max_tokens: int | None = MaxTokOpt,
    tools_file: str | None = ToolsOpt,
    allow_model_override: bool | None = OverrideOpt,
    config: str | None = ConfigOpt,
) -> None:
    """Change a project's settings; prints it as JSON."""
    fields = _project_fields(model, system_prompt, temperature, top_p, max_tokens, tools_file, allow_model_override)
    if name:
        fields["name"] = name
    emit(projects.as_dict(run_db(config, lambda s: projects.update(s, project_id, **fields))), True, "")


@projects_app.command("delete")
def projects_delete(project_id: str, config: str | None = ConfigOpt) -> None:
    """Delete a project with its keys and sessions."""
    run_db(config, lambda s: projects.remove(s, project_id))
    typer.echo(f"deleted {project_id}")


@project_keys_app.command("create")
def project_keys_create(
    project_id: str, as_json: bool = typer.Option(False, "--json"), config: str | None = ConfigOpt
) -> None:
    """Another API key for a project."""

    async def work(s: AsyncSession) -> tuple[Any, str]:
        await projects.get(s, project_id)
        return await keys.create_project_key(s, project_id)

    row, key = run_db(config, work)
    emit({"id": row.id, "project_id": project_id, "api_key": key}, as_json, f"{row.id}\t{key}")


@project_keys_app.command("revoke")
def project_keys_revoke(key_id: str, config: str | None = ConfigOpt) -> None:
    """Revoke a project key by id."""
    row = run_db(config, lambda s: keys.revoke(s, ProjectKey, key_id))
    typer.echo(f"revoked {row.id}")


@integrations_app.command("create")
def integrations_create(
    name: str = typer.Option(..., "--name"),
    default_model: str | None = typer.Option(None, "--default-model"),
    default_embedding_model: str | None = typer.Option(None, "--default-embedding-model"),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOpt,
) -> None:
    """Create an integration; prints its app_id and both secrets (keep them: tokens are signed with them)."""
    key = server_key(_settings(config))
    row, hash_token, admin_token = run_db(
        config, lambda s: integrations.create(s, key, name, default_model, default_embedding_model)
    )
    data = {"app_id": row.id, "hash_token": hash_token, "admin_token": admin_token}
    emit(data, as_json, "\n".join(f"{k}: {v}" for k, v in data.items()))


@integrations_app.command("list")
def integrations_list(as_json: bool = typer.Option(False, "--json"), config: str | None = ConfigOpt) -> None:
    """List integrations (without secrets)."""
    rows = [integrations.as_dict(r) for r in run_db(config, integrations.list_all)]
    emit(rows, as_json, "\n".join(f"{r['app_id']}\t{r['name']}" for r in rows) or "(no integrations)")


@integrations_app.command("show")
def integrations_show(
    app_id: str,
    secrets: bool = typer.Option(False, "--secrets", help="Include both secrets."),
    config: str | None = ConfigOpt,
) -> None:
    """Show one integration as JSON."""
    key = server_key(_settings(config))
    row = run_db(config, lambda s: integrations.get(s, app_id))
    data = integrations.as_dict(row)
    if secrets:
        data["hash_token"], data["admin_token"] = integrations.secrets_of(key, row)
    emit(data, True, "")


@integrations_app.command("rotate")
def integrations_rotate(
    app_id: str,
    which: str = typer.Option("both", "--which", help="hash_token, admin_token or both"),
    config: str | None = ConfigOpt,
) -> None:
    """Replace an integration's secret(s); tokens signed with the old ones stop working."""
    if which not in ("hash_token", "admin_token", "both"):
        raise typer.BadParameter("--which must be hash_token, admin_token or both")
    key = server_key(_settings(config))
    emit({"app_id": app_id, **run_db(config, lambda s: integrations.rotate(s, key, app_id, which))}, True, "")


@integrations_app.command("delete")
def integrations_delete(app_id: str, config: str | None = ConfigOpt) -> None:
    """Delete an integration with all its conversations."""
    run_db(config, lambda s: integrations.remove(s, app_id))
    typer.echo(f"deleted {app_id}")


@app.command()
def token(
    app_id: str = typer.Option(..., "--app-id"),
    user_id: str = typer.Option(..., "--user-id"),
    user_name: str | None = typer.Option(None, "--user-name"),
    admin: bool = typer.Option(False, "--admin", help="An ak- (admin) token instead of ek- (user)."),
    ttl: int = typer.Option(86400, "--ttl", help="Seconds until it expires."),
    config: str | None = ConfigOpt,
) -> None:
    """Print a ready v8 token, made exactly as seed 003's generateToken makes it."""
    import time

    key = server_key(_settings(config))
    row = run_db(config, lambda s: integrations.get(s, app_id))
    hash_token, admin_token = integrations.secrets_of(key, row)
    secret = admin_token if admin else hash_token
    if secret is None:
        typer.echo("error: this integration's secrets were sealed with another server key", err=True)
        raise typer.Exit(1)
    typer.echo(v8_tokens.make_token(secret, app_id, user_id, int(time.time()) + ttl, user_name, admin))


@app.command()
def extract(path: str, as_json: bool = typer.Option(False, "--json", help="Print {content, metadata}.")) -> None:
    """Print the text Parley extracts from a file (pdf, docx, doc, xlsx, xls, csv, pptx, html, json, yaml, txt, md)."""
    from parley.extract import ExtractionError, extract_file

    try:
        content, metadata = extract_file(path)
    except (ExtractionError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    emit({"content": content, "metadata": metadata}, as_json, content)
