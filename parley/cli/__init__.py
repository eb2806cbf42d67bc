"""The ``parley`` command: serve, and manage keys, projects, integrations and memories.

Each group of subcommands is a module of its own here; what they share is in ``common``."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import typer

from parley import serving
from parley.auth import v8_tokens
from parley.auth.sealed import server_key
from parley.cli import integrations, keys, memories, projects
from parley.cli.common import ConfigOpt, database_label, emit, run_db
from parley.config import load_settings
from parley.errors import ParleyError
from parley.integrations import get as get_integration
from parley.integrations import secrets_of
from parley.storage import db

app = typer.Typer(help="Parley: a self-hosted AI chat backend.", no_args_is_help=True)
app.add_typer(keys.app, name="keys")
app.add_typer(projects.app, name="projects")
app.add_typer(memories.app, name="memories")
app.add_typer(integrations.app, name="integrations")


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to bind (default from config: 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default from config: 8000)."),
    workers: int = typer.Option(1, help="Worker processes."),
    config: str | None = ConfigOpt,
) -> None:
    """Start the server (migrating the database first)."""
    import logging

    from parley.logs import setup_logging

    if config:
        os.environ["PARLEY_CONFIG"] = os.path.abspath(config)
    settings = load_settings(config)
    setup_logging(settings.log_level)
    logging.getLogger("parley").info(
        "using database", extra={"fields": {"database": database_label(settings.database_url)}}
    )
    asyncio.run(db.migrate(settings.database_url))
    os.environ["PARLEY_MIGRATED"] = settings.database_url
    sys.stdout.flush()
    sys.stderr.flush()
    # The serving process starts afresh: what this command imported stays behind (parley.serving).
    argv = serving.command(host or settings.host, port or settings.port, workers)
    os.execv(argv[0], argv)


@app.command()
def usage(
    by: str | None = typer.Option(None, "--by", help="Group by key, project, integration, user, model or day."),
    since: str | None = typer.Option(None, "--since", help="Only requests from this date (UTC) on, e.g. 2025-01-31."),
    as_json: bool = typer.Option(False, "--json", help="A JSON list of objects instead of a table."),
    config: str | None = ConfigOpt,
) -> None:
    """Requests, tokens, cost and errors from the usage records, in total or grouped."""
    from parley.usage import store as usage_store

    if by is not None and by not in usage_store.GROUPINGS:
        raise typer.BadParameter(f"--by must be one of {', '.join(usage_store.GROUPINGS)}")
    try:
        start = usage_store.parse_since(since) if since else None
    except ParleyError as exc:
        raise typer.BadParameter(exc.message) from None
    rows = run_db(config, lambda s: usage_store.totals(s, by, start))  # type: ignore[arg-type]
    if as_json:
        emit(rows, True, "")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Usage" + (f" since {start:%Y-%m-%d %H:%M} UTC" if start else ""))
    groups = usage_store.FIELDS[by] if by else ()
    columns = [*groups, "requests", "prompt_tokens", "completion_tokens", "cost_usd", "errors"]
    for name in columns:
        table.add_column(name, justify="left" if name in groups else "right")
    for row in rows:
        table.add_row(*(_cell(row[name]) for name in columns))
    # Piped or redirected: no terminal width to fit, so ids and totals are never cut short.
    Console(width=None if sys.stdout.isatty() else 240).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


@app.command()
def token(
    app_id: str = typer.Option(..., "--app-id"),
    user_id: str = typer.Option(..., "--user-id"),
    user_name: str | None = typer.Option(None, "--user-name"),
    admin: bool = typer.Option(False, "--admin", help="An ak- (admin) token instead of ek- (user)."),
    ttl: int = typer.Option(86400, "--ttl", help="Seconds until it expires."),
    config: str | None = ConfigOpt,
) -> None:
    """Print a ready v8 token: ek- (user) or ak- (admin), signed as docs/protocol.md describes."""
    import time

    key = server_key(load_settings(config))
    row = run_db(config, lambda s: get_integration(s, app_id))
    hash_token, admin_token = secrets_of(key, row)
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
