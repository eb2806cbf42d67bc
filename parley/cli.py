"""The ``parley`` command: serve, and manage keys, projects, integrations and memories."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import typer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley import integrations, projects, serving
from parley.auth import keys, v8_tokens
from parley.auth.sealed import server_key
from parley.config import Settings, load_settings
from parley.errors import ParleyError
from parley.limits import store as limits
from parley.storage import db
from parley.storage.models import GatewayKey, Integration, Project, ProjectKey

app = typer.Typer(help="Parley: a self-hosted AI chat backend.", no_args_is_help=True)
keys_app = typer.Typer(help="Gateway keys for /v1.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
projects_app = typer.Typer(help="Projects for the integration API.", no_args_is_help=True)
project_keys_app = typer.Typer(help="More API keys for a project.", no_args_is_help=True)
projects_app.add_typer(project_keys_app, name="keys")
app.add_typer(projects_app, name="projects")
memories_app = typer.Typer(help="v8 memories (knowledge bases).", no_args_is_help=True)
app.add_typer(memories_app, name="memories")
integrations_app = typer.Typer(help="v8 integrations (tenants) and their signing secrets.", no_args_is_help=True)
app.add_typer(integrations_app, name="integrations")

T = TypeVar("T")
ConfigOpt = typer.Option(None, "--config", "-c", envvar="PARLEY_CONFIG", help="YAML config file.")


def _settings(config: str | None) -> Settings:
    return load_settings(config)


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
    settings = _settings(config)
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
    settings = _settings(config)
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


# Limits and budgets: the same flags on keys, projects and integrations (0 removes a limit).
RpmOpt = typer.Option(None, "--rpm", min=0, help="Requests per minute (0 removes the limit).")
TpmOpt = typer.Option(None, "--tpm", min=0, help="Tokens per minute (0 removes the limit).")
StreamsOpt = typer.Option(None, "--max-streams", min=0, help="Concurrent streams (0 removes the limit).")
BudgetOpt = typer.Option(
    None, "--budget-usd", min=0, help="Spend per budget period in USD, priced from the models' prices (0 removes it)."
)
PeriodOpt = typer.Option(None, "--budget-period", help="day or month (UTC); the default is day.")


def _limits(
    rpm: int | None, tpm: int | None, streams: int | None, budget: float | None, period: str | None
) -> dict[str, Any]:
    if period is not None and period not in limits.PERIODS:
        raise typer.BadParameter("--budget-period must be day or month")
    return {"rpm": rpm, "tpm": tpm, "max_streams": streams, "budget_usd": budget, "budget_period": period}


def _limits_line(shown: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in shown.items()) or "no limits"


def _key_dict(row: GatewayKey, lim: limits.Limits) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.key_prefix,
        "created_at": row.created_at,
        "revoked": row.revoked_at is not None,
        "limits": limits.shown(lim),
    }


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name"),
    rpm: int | None = RpmOpt,
    tpm: int | None = TpmOpt,
    max_streams: int | None = StreamsOpt,
    budget_usd: float | None = BudgetOpt,
    budget_period: str | None = PeriodOpt,
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOpt,
) -> None:
    """Create a gateway key; the key is shown once and stored hashed."""
    changes = _limits(rpm, tpm, max_streams, budget_usd, budget_period)

    async def work(s: AsyncSession) -> tuple[GatewayKey, str, limits.Limits]:
        limits.check(changes)  # before anything is made
        row, key = await keys.create_gateway_key(s, name)
        return row, key, await limits.set_limits(s, "key", row.id, **changes)

    row, key, lim = run_db(config, work)
    emit(
        {"id": row.id, "name": row.name, "key": key, "limits": limits.shown(lim)},
        as_json,
        f"{row.id}\t{key}\n(store it now: it is shown only once)",
    )


@keys_app.command("update")
def keys_update(
    key_id: str,
    name: str | None = typer.Option(None, "--name"),
    rpm: int | None = RpmOpt,
    tpm: int | None = TpmOpt,
    max_streams: int | None = StreamsOpt,
    budget_usd: float | None = BudgetOpt,
    budget_period: str | None = PeriodOpt,
    config: str | None = ConfigOpt,
) -> None:
    """Rename a gateway key or change its limits; prints it as JSON."""
    changes = _limits(rpm, tpm, max_streams, budget_usd, budget_period)

    async def work(s: AsyncSession) -> dict[str, Any]:
        row = await keys.get_gateway_key(s, key_id)
        limits.check(changes)
        if name is not None:
            row = await keys.rename_gateway_key(s, key_id, name)
        return _key_dict(row, await limits.set_limits(s, "key", key_id, **changes))

    emit(run_db(config, work), True, "")


@keys_app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json"), config: str | None = ConfigOpt) -> None:
    """List gateway keys (prefixes only) with their limits."""

    async def work(s: AsyncSession) -> list[dict[str, Any]]:
        set_ = await limits.of_scope(s, "key")
        return [_key_dict(r, set_.get(r.id, limits.NONE)) for r in await keys.list_keys(s, GatewayKey)]

    data = run_db(config, work)
    lines = [
        f"{d['id']}\t{d['name']}\t{d['prefix']}\t{'revoked' if d['revoked'] else 'active'}\t{_limits_line(d['limits'])}"
        for d in data
    ]
    emit(data, as_json, "\n".join(lines) or "(no keys)")


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: str | None = ConfigOpt) -> None:
    """Revoke a gateway key by id."""
    row = run_db(config, lambda s: keys.revoke(s, GatewayKey, key_id))
    typer.echo(f"revoked {row.id}")


def _project_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The project settings a create/update command was given (None = not given)."""
    fields = {
        k: options[k]
        for k in ("model", "system_prompt", "temperature", "top_p", "max_tokens", "allow_model_override", "name")
        if options.get(k) is not None
    }
    if options.get("tools_file"):
        fields["tools"] = orjson.loads(open(options["tools_file"], "rb").read())
    if options.get("memory"):
        memories: dict[str, Any] = {
            "collections": list(options["memory"]),
            "limit": options.get("memory_limit") or 5,
            "min_similarity": options.get("memory_min_similarity") or 0.5,
        }
        if options.get("unmatch_message"):
            memories["unmatch_message"] = options["unmatch_message"]
        fields["memories"] = memories
    if options.get("memory_mode"):
        fields["memory_mode"] = options["memory_mode"]
    return fields


ModelOpt = typer.Option(None, "--model", help="Public model name (default: the server's default model).")
PromptOpt = typer.Option(None, "--system-prompt")
TempOpt = typer.Option(None, "--temperature", min=0, max=2)
TopPOpt = typer.Option(None, "--top-p", min=0, max=1)
MaxTokOpt = typer.Option(None, "--max-tokens", min=1)
ToolsOpt = typer.Option(None, "--tools-file", help="JSON file with the project's default tools (OpenAI format).")
MemoryOpt = typer.Option(None, "--memory", help="A memory (knowledge base) id to retrieve from; repeat for more.")
MemoryLimitOpt = typer.Option(None, "--memory-limit", min=1, max=100, help="Sources per turn (default 5).")
MemoryMinOpt = typer.Option(None, "--memory-min-similarity", min=0, max=1, help="Default 0.5.")
UnmatchOpt = typer.Option(None, "--unmatch-message", help="The reply when no source passes (no model is called).")
MemoryModeOpt = typer.Option(
    None, "--memory-mode", help="How sources are searched: hybrid (default), dense or lexical."
)
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
    memory: list[str] | None = MemoryOpt,
    memory_limit: int | None = MemoryLimitOpt,
    memory_min_similarity: float | None = MemoryMinOpt,
    unmatch_message: str | None = UnmatchOpt,
    rpm: int | None = RpmOpt,
    tpm: int | None = TpmOpt,
    max_streams: int | None = StreamsOpt,
    budget_usd: float | None = BudgetOpt,
    budget_period: str | None = PeriodOpt,
    memory_mode: str | None = MemoryModeOpt,
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOpt,
) -> None:
    """Create a project; prints its id and first API key (shown once, stored hashed)."""
    fields = _project_fields(locals())
    fields.pop("name", None)
    changes = _limits(rpm, tpm, max_streams, budget_usd, budget_period)

    async def work(s: AsyncSession) -> tuple[Project, str, limits.Limits]:
        limits.check(changes)  # before anything is made
        project, key = await projects.create(s, name, **fields)
        return project, key, await limits.set_limits(s, "project", project.id, **changes)

    project, key, lim = run_db(config, work)
    emit(
        {"id": project.id, "name": project.name, "api_key": key, "limits": limits.shown(lim)},
        as_json,
        f"{project.id}\t{key}\n(store the key now: it is shown only once)",
    )


def _project_dict(project: Project, lim: limits.Limits) -> dict[str, Any]:
    return {**projects.as_dict(project), "limits": limits.shown(lim)}


@projects_app.command("list")
def projects_list(as_json: bool = typer.Option(False, "--json"), config: str | None = ConfigOpt) -> None:
    """List projects with their limits."""

    async def work(s: AsyncSession) -> list[dict[str, Any]]:
        set_ = await limits.of_scope(s, "project")
        return [_project_dict(p, set_.get(p.id, limits.NONE)) for p in await projects.list_all(s)]

    rows = run_db(config, work)
    emit(
        rows,
        as_json,
        "\n".join(
            f"{p['id']}\t{p['name']}\t{p['model'] or '(default model)'}\t{_limits_line(p['limits'])}" for p in rows
        )
        or "(no projects)",
    )


@projects_app.command("show")
def projects_show(project_id: str, config: str | None = ConfigOpt) -> None:
    """Show one project as JSON."""

    async def work(s: AsyncSession) -> dict[str, Any]:
        return _project_dict(await projects.get(s, project_id), await limits.get(s, "project", project_id))

    emit(run_db(config, work), True, "")


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
    memory: list[str] | None = MemoryOpt,
    memory_limit: int | None = MemoryLimitOpt,
    memory_min_similarity: float | None = MemoryMinOpt,
    unmatch_message: str | None = UnmatchOpt,
    rpm: int | None = RpmOpt,
    tpm: int | None = TpmOpt,
    max_streams: int | None = StreamsOpt,
    budget_usd: float | None = BudgetOpt,
    budget_period: str | None = PeriodOpt,
    memory_mode: str | None = MemoryModeOpt,
    config: str | None = ConfigOpt,
) -> None:
    """Change a project's settings or limits; prints it as JSON."""
    fields = _project_fields(locals())
    changes = _limits(rpm, tpm, max_streams, budget_usd, budget_period)

    async def work(s: AsyncSession) -> dict[str, Any]:
        await projects.get(s, project_id)
        limits.check(changes)
        project = await projects.update(s, project_id, **fields)
        return _project_dict(project, await limits.set_limits(s, "project", project_id, **changes))

    emit(run_db(config, work), True, "")


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


UserRpmOpt = typer.Option(None, "--user-rpm", min=0, help="Requests per minute for each end user (0 removes it).")
UserTpmOpt = typer.Option(None, "--user-tpm", min=0, help="Tokens per minute for each end user (0 removes it).")
UserStreamsOpt = typer.Option(None, "--user-max-streams", min=0, help="Concurrent streams for each end user.")
UserBudgetOpt = typer.Option(
    None, "--user-budget-usd", min=0, help="Spend per budget period for each end user (--budget-period applies)."
)


async def _set_integration_limits(
    s: AsyncSession, app_id: str, changes: dict[str, Any], user: dict[str, Any]
) -> dict[str, Any]:
    own = await limits.set_limits(s, "integration", app_id, **changes)
    users = await limits.set_limits(s, "user", app_id, **user)
    return {"limits": limits.shown(own), "user_limits": limits.shown(users)}


@integrations_app.command("create")
def integrations_create(
    name: str = typer.Option(..., "--name"),
    default_model: str | None = typer.Option(None, "--default-model"),
    default_embedding_model: str | None = typer.Option(None, "--default-embedding-model"),
    rpm: int | None = RpmOpt,
    tpm: int | None = TpmOpt,
    max_streams: int | None = StreamsOpt,
    budget_usd: float | None = BudgetOpt,
    budget_period: str | None = PeriodOpt,
    user_rpm: int | None = UserRpmOpt,
    user_tpm: int | None = UserTpmOpt,
    user_max_streams: int | None = UserStreamsOpt,
    user_budget_usd: float | None = UserBudgetOpt,
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOpt,
) -> None:
    """Create an integration; prints its app_id and both secrets (keep them: tokens are signed with them)."""
    key = server_key(_settings(config))
    changes = _limits(rpm, tpm, max_streams, budget_usd, budget_period)
    user = _limits(user_rpm, user_tpm, user_max_streams, user_budget_usd, budget_period)  # one period for both

    async def work(s: AsyncSession) -> tuple[Integration, str, str, dict[str, Any]]:
        limits.check(changes)  # before anything is made
        limits.check(user)
        row, hash_token, admin_token = await integrations.create(s, key, name, default_model, default_embedding_model)
        return row, hash_token, admin_token, await _set_integration_limits(s, row.id, changes, user)

    row, hash_token, admin_token, set_ = run_db(config, work)
    data = {"app_id": row.id, "hash_token": hash_token, "admin_token": admin_token}
    emit({**data, **set_}, as_json, "\n".join(f"{k}: {v}" for k, v in data.items()))


@integrations_app.command("update")
def integrations_update(
    app_id: str,
    name: str | None = typer.Option(None, "--name"),
    default_model: str | None = typer.Option(None, "--default-model"),
    default_embedding_model: str | None = typer.Option(None, "--default-embedding-model"),
    rpm: int | None = RpmOpt,
    tpm: int | None = TpmOpt,
    max_streams: int | None = StreamsOpt,
    budget_usd: float | None = BudgetOpt,
    budget_period: str | None = PeriodOpt,
    user_rpm: int | None = UserRpmOpt,
    user_tpm: int | None = UserTpmOpt,
    user_max_streams: int | None = UserStreamsOpt,
    user_budget_usd: float | None = UserBudgetOpt,
    config: str | None = ConfigOpt,
) -> None:
    """Change an integration's name, default models or limits; prints it as JSON."""
    changes = _limits(rpm, tpm, max_streams, budget_usd, budget_period)
    user = _limits(user_rpm, user_tpm, user_max_streams, user_budget_usd, budget_period)  # one period for both

    async def work(s: AsyncSession) -> dict[str, Any]:
        await integrations.get(s, app_id)
        limits.check(changes)
        limits.check(user)
        row = await integrations.update(
            s, app_id, name=name, default_model=default_model, default_embedding_model=default_embedding_model
        )
        return {**integrations.as_dict(row), **await _set_integration_limits(s, app_id, changes, user)}

    emit(run_db(config, work), True, "")


@integrations_app.command("list")
def integrations_list(as_json: bool = typer.Option(False, "--json"), config: str | None = ConfigOpt) -> None:
    """List integrations (without secrets) with their limits."""

    async def work(s: AsyncSession) -> list[dict[str, Any]]:
        own, users = await limits.of_scope(s, "integration"), await limits.of_scope(s, "user")
        return [
            {
                **integrations.as_dict(r),
                "limits": limits.shown(own.get(r.id, limits.NONE)),
                "user_limits": limits.shown(users.get(r.id, limits.NONE)),
            }
            for r in await integrations.list_all(s)
        ]

    rows = run_db(config, work)
    emit(
        rows,
        as_json,
        "\n".join(
            f"{r['app_id']}\t{r['name']}\t{_limits_line(r['limits'])}\tper user: {_limits_line(r['user_limits'])}"
            for r in rows
        )
        or "(no integrations)",
    )


@integrations_app.command("show")
def integrations_show(
    app_id: str,
    secrets: bool = typer.Option(False, "--secrets", help="Include both secrets."),
    config: str | None = ConfigOpt,
) -> None:
    """Show one integration as JSON."""
    key = server_key(_settings(config))

    async def work(s: AsyncSession) -> tuple[Integration, limits.Limits, limits.Limits]:
        row = await integrations.get(s, app_id)
        return row, await limits.get(s, "integration", app_id), await limits.get(s, "user", app_id)

    row, own, users = run_db(config, work)
    data = {**integrations.as_dict(row), "limits": limits.shown(own), "user_limits": limits.shown(users)}
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
    """Delete an integration with its conversations, memories and everything in them."""
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
    """Print a ready v8 token: ek- (user) or ak- (admin), signed as docs/protocol.md describes."""
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


@memories_app.command("create")
def memories_create(
    app_id: str = typer.Option(..., "--app-id", help="The integration that owns it."),
    name: str = typer.Option(..., "--name"),
    description: str | None = typer.Option(None, "--description"),
    embedding_model: str | None = typer.Option(None, "--embedding-model"),
    max_tokens_per_chunk: int = typer.Option(1024, "--max-tokens-per-chunk", min=16),
    overlap_tokens: int = typer.Option(0, "--overlap-tokens", min=0),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOpt,
) -> None:
    """Create a memory for an integration."""
    from parley.memory.store import create_memory, memory_dict
    from parley.storage.models import Memory

    settings = _settings(config)

    async def work(s: AsyncSession) -> Memory:
        integration = await integrations.get(s, app_id)
        return await create_memory(
            s,
            app_id,
            name,
            embedding_model=embedding_model or integration.default_embedding_model or settings.default_embedding_model,
            available_models=settings.embedding_model_names(),
            description=description,
            max_tokens_per_chunk=max_tokens_per_chunk,
            overlap_tokens=overlap_tokens,
        )

    row = run_db(config, work)
    emit(memory_dict(row), as_json, f"{row.id}\t{row.name}")


@memories_app.command("list")
def memories_list(
    app_id: str = typer.Option(..., "--app-id"),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOpt,
) -> None:
    """List an integration's memories."""
    from parley.memory.store import list_memories, memory_dict

    rows = [memory_dict(m) for m in run_db(config, lambda s: list_memories(s, app_id))]
    emit(rows, as_json, "\n".join(f"{m['id']}\t{m['name']}\t{m['embedding_model']}" for m in rows) or "(none)")


async def _embed_and_report(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, memory_id: str, keys: list[str]
) -> None:
    """Embed the contents' chunks here, beside any server doing the same, and report progress
    until every one is embedded (or has failed), whoever embedded it."""
    from parley.memory.jobs import EmbeddingWorker
    from parley.memory.progress import Progress, embedding_progress
    from parley.providers.routing import Router

    router = Router(settings)
    worker = EmbeddingWorker(sessions, router)
    shown: Progress | None = None
    try:
        while True:
            worked = await worker.run_once()  # 0 when others hold the chunks (or none are due)
            async with sessions() as db:
                now_at = await embedding_progress(db, memory_id, keys)
            if now_at != shown:
                failed = f", {now_at.failed} failed" if now_at.failed else ""
                typer.echo(f"\rEmbedded {now_at.completed}/{now_at.total} chunks{failed}", nl=False)
                shown = now_at
            if now_at.finished:
                break
            if not worked:
                await asyncio.sleep(0.2)  # someone else is embedding them, or a retry is not due yet
    finally:
        typer.echo("")
        await router.aclose()


@memories_app.command("ingest")
def memories_ingest(
    memory_id: str,
    paths: list[str] = typer.Argument(..., help="Files or folders (folders are read recursively)."),
    embed: bool = typer.Option(True, "--embed/--no-embed", help="Embed here and now, or leave it to the server."),
    config: str | None = ConfigOpt,
) -> None:
    """Add files to a memory: text extracted, keyed by path (re-running updates), then embedded."""
    from collections import Counter

    from parley.memory.ingest import files_under, ingest_file, supported
    from parley.storage.models import Memory

    settings = _settings(config)
    try:
        files = [p for p in files_under(paths) if supported(p)]
    except FileNotFoundError as exc:
        typer.echo(f"error: no such file or folder: {exc}", err=True)
        raise typer.Exit(1) from None

    async def work(s: AsyncSession) -> Counter[str]:
        memory = await s.get(Memory, memory_id)
        if memory is None:
            raise ParleyError(f"Memory {memory_id!r} not found")
        outcomes: Counter[str] = Counter()
        keys: list[str] = []
        with typer.progressbar(files, label="Reading", show_pos=True) as bar:
            for path in bar:
                outcome = await ingest_file(s, memory, path)
                outcomes[outcome.split(":")[0]] += 1
                if outcome.startswith("failed"):
                    typer.echo(f"\n{path}: {outcome}", err=True)
                elif outcome != "empty":
                    keys.append(str(path))  # contents are keyed by their file's absolute path
        if embed and keys:
            await _embed_and_report(db.sessionmaker(s.bind), settings, memory_id, keys)  # type: ignore[arg-type]
        return outcomes

    outcomes = run_db(config, work)
    typer.echo(", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())) or "nothing to ingest")


@memories_app.command("calibrate")
def memories_calibrate(
    memory_id: str,
    sample: int = typer.Option(200, "--sample", min=10, help="Chunks to draw test questions from."),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOpt,
) -> None:
    """Measure a memory's dense similarity on its own contents and fit a calibration for its model.

    A sentence taken out of a chunk plays a question whose right answer is the rest of that
    chunk. For an upstream embedding model, put the printed midpoint and slope under that
    model's `similarity` in the configuration; the packaged model's calibration is built in,
    and the report shows how it does on this memory.
    """
    from parley.memory.calibrate import calibrate
    from parley.memory.search import Searcher
    from parley.providers.routing import Router
    from parley.storage.models import Memory

    settings = _settings(config)

    async def work(s: AsyncSession) -> dict[str, Any]:
        memory = await s.get(Memory, memory_id)
        if memory is None:
            raise ParleyError(f"Memory {memory_id!r} not found")
        router = Router(settings)
        try:
            fit = await calibrate(s, memory, Searcher(router, postgres=False), sample)
        except ValueError as exc:
            raise ParleyError(str(exc)) from None
        finally:
            await router.aclose()
        return fit.as_dict()

    fit = run_db(config, work)
    lines = [
        f"{fit['pairs']} questions drawn from memory {memory_id} ({fit['model']})",
        f"now:    right answers at or above 0.5: {fit['right_now']:.1%}; wrong ones: {fit['wrong_now']:.1%}",
        f"fitted: right answers at or above 0.5: {fit['right_fitted']:.1%}; wrong ones: {fit['wrong_fitted']:.1%}",
    ]
    if fit["applies_to"] == "configuration":
        lines += [
            "to use it, set in the configuration:",
            "models:",
            f"  - name: {fit['model']}",
            "    # provider, kind: embedding, … as before",
            f"    similarity: {{midpoint: {fit['midpoint']}, slope: {fit['slope']}}}",
        ]
    else:
        lines.append("(the packaged model's calibration is built in; this reports how it does here)")
    emit(fit, as_json, "\n".join(lines))
