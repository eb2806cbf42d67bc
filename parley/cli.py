"""The ``parley`` command: serve, and manage keys, projects, integrations and memories."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import typer
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth import gateway_keys
from parley.config import Settings, load_settings
from parley.storage import db

app = typer.Typer(help="Parley: a self-hosted AI chat backend.", no_args_is_help=True)
keys_app = typer.Typer(help="Gateway keys for /v1.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

T = TypeVar("T")
ConfigOpt = typer.Option(None, "--config", "-c", envvar="PARLEY_CONFIG", help="YAML config file.")


def _settings(config: str | None) -> Settings:
    return load_settings(config)


def run_db(config: str | None, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one unit of work against the configured database (migrated first)."""
    settings = _settings(config)

    async def main() -> T:
        await db.migrate(settings.database_url)
        engine = db.create_engine(settings.database_url)
        try:
            async with db.sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


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
    row, key = run_db(config, lambda s: gateway_keys.create(s, name))
    emit(
        {"id": row.id, "name": row.name, "key": key}, as_json, f"{row.id}\t{key}\n(store it now: it is shown only once)"
    )


@keys_app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json"), config: str | None = ConfigOpt) -> None:
    """List gateway keys (prefixes only)."""
    rows = run_db(config, gateway_keys.list_all)
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
    from parley.errors import NotFound

    try:
        row = run_db(config, lambda s: gateway_keys.revoke(s, key_id))
    except NotFound as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked {row.id}")
