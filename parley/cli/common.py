"""What every ``parley`` command shares: the config option, the database it works on, output,
and the limit and budget flags that keys, projects and integrations take alike."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import typer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from parley.config import Settings, load_settings
from parley.errors import ParleyError
from parley.limits import store as limits
from parley.storage import db

T = TypeVar("T")
ConfigOpt = typer.Option(None, "--config", "-c", envvar="PARLEY_CONFIG", help="YAML config file.")


def database_label(url: str) -> str:
    """The database URL with its password masked, and a SQLite file's absolute path."""
    parsed = make_url(url)
    label = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        label += f" (file {Path(parsed.database).resolve()})"
    return label


def say_database(config: str | None, settings: Settings) -> None:
    """Tell on stderr which database a command uses, so a key never lands somewhere unexpected."""
    typer.echo(f"using database {database_label(settings.database_url)}", err=True)
    if config is None and "PARLEY_DATABASE_URL" not in os.environ:
        typer.echo(
            "note: no --config FILE or PARLEY_CONFIG given, so this is the default database; "
            "pass the server's config file to reach the server's database",
            err=True,
        )


def run_db(config: str | None, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one unit of work against the configured database (migrated first).

    A ParleyError (unknown id, bad value) is printed and exits with status 1.
    """
    settings = load_settings(config)
    say_database(config, settings)

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


# Limits and budgets: the same flags on keys, projects and integrations (0 removes a limit).
RpmOpt = typer.Option(None, "--rpm", min=0, help="Requests per minute (0 removes the limit).")
TpmOpt = typer.Option(None, "--tpm", min=0, help="Tokens per minute (0 removes the limit).")
StreamsOpt = typer.Option(None, "--max-streams", min=0, help="Concurrent streams (0 removes the limit).")
BudgetOpt = typer.Option(
    None, "--budget-usd", min=0, help="Spend per budget period in USD, priced from the models' prices (0 removes it)."
)
PeriodOpt = typer.Option(None, "--budget-period", help="day or month (UTC); the default is day.")


def limit_changes(
    rpm: int | None, tpm: int | None, streams: int | None, budget: float | None, period: str | None
) -> dict[str, Any]:
    if period is not None and period not in limits.PERIODS:
        raise typer.BadParameter("--budget-period must be day or month")
    return {"rpm": rpm, "tpm": tpm, "max_streams": streams, "budget_usd": budget, "budget_period": period}


def limits_line(shown: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in shown.items()) or "no limits"
