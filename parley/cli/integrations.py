"""``parley integrations``: v8 integrations (tenants), their secrets and limits."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from parley import integrations
from parley.auth.sealed import server_key
from parley.cli import common
from parley.config import load_settings
from parley.limits import store as limits
from parley.storage.models import Integration

app = typer.Typer(help="v8 integrations (tenants) and their signing secrets.", no_args_is_help=True)


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


@app.command("create")
def integrations_create(
    name: str = typer.Option(..., "--name"),
    default_model: str | None = typer.Option(None, "--default-model"),
    default_embedding_model: str | None = typer.Option(None, "--default-embedding-model"),
    rpm: int | None = common.RpmOpt,
    tpm: int | None = common.TpmOpt,
    max_streams: int | None = common.StreamsOpt,
    budget_usd: float | None = common.BudgetOpt,
    budget_period: str | None = common.PeriodOpt,
    user_rpm: int | None = UserRpmOpt,
    user_tpm: int | None = UserTpmOpt,
    user_max_streams: int | None = UserStreamsOpt,
    user_budget_usd: float | None = UserBudgetOpt,
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = common.ConfigOpt,
) -> None:
    """Create an integration; prints its app_id and both secrets (keep them: tokens are signed with them)."""
    key = server_key(load_settings(config))
    changes = common.limit_changes(rpm, tpm, max_streams, budget_usd, budget_period)
    # One budget period for both.
    user = common.limit_changes(user_rpm, user_tpm, user_max_streams, user_budget_usd, budget_period)

    async def work(s: AsyncSession) -> tuple[Integration, str, str, dict[str, Any]]:
        limits.check(changes)  # before anything is made
        limits.check(user)
        row, hash_token, admin_token = await integrations.create(s, key, name, default_model, default_embedding_model)
        return row, hash_token, admin_token, await _set_integration_limits(s, row.id, changes, user)

    row, hash_token, admin_token, set_ = common.run_db(config, work)
    data = {"app_id": row.id, "hash_token": hash_token, "admin_token": admin_token}
    common.emit({**data, **set_}, as_json, "\n".join(f"{k}: {v}" for k, v in data.items()))


@app.command("update")
def integrations_update(
    app_id: str,
    name: str | None = typer.Option(None, "--name"),
    default_model: str | None = typer.Option(None, "--default-model"),
    default_embedding_model: str | None = typer.Option(None, "--default-embedding-model"),
    rpm: int | None = common.RpmOpt,
    tpm: int | None = common.TpmOpt,
    max_streams: int | None = common.StreamsOpt,
    budget_usd: float | None = common.BudgetOpt,
    budget_period: str | None = common.PeriodOpt,
    user_rpm: int | None = UserRpmOpt,
    user_tpm: int | None = UserTpmOpt,
    user_max_streams: int | None = UserStreamsOpt,
    user_budget_usd: float | None = UserBudgetOpt,
    config: str | None = common.ConfigOpt,
) -> None:
    """Change an integration's name, default models or limits; prints it as JSON."""
    changes = common.limit_changes(rpm, tpm, max_streams, budget_usd, budget_period)
    # One budget period for both.
    user = common.limit_changes(user_rpm, user_tpm, user_max_streams, user_budget_usd, budget_period)

    async def work(s: AsyncSession) -> dict[str, Any]:
        await integrations.get(s, app_id)
        limits.check(changes)
        limits.check(user)
        row = await integrations.update(
            s, app_id, name=name, default_model=default_model, default_embedding_model=default_embedding_model
        )
        return {**integrations.as_dict(row), **await _set_integration_limits(s, app_id, changes, user)}

    common.emit(common.run_db(config, work), True, "")


@app.command("list")
def integrations_list(as_json: bool = typer.Option(False, "--json"), config: str | None = common.ConfigOpt) -> None:
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

    rows = common.run_db(config, work)
    common.emit(
        rows,
        as_json,
        "\n".join(
            f"{r['app_id']}\t{r['name']}\t{common.limits_line(r['limits'])}\t"
            f"per user: {common.limits_line(r['user_limits'])}"
            for r in rows
        )
        or "(no integrations)",
    )


@app.command("show")
def integrations_show(
    app_id: str,
    secrets: bool = typer.Option(False, "--secrets", help="Include both secrets."),
    config: str | None = common.ConfigOpt,
) -> None:
    """Show one integration as JSON."""
    key = server_key(load_settings(config))

    async def work(s: AsyncSession) -> tuple[Integration, limits.Limits, limits.Limits]:
        row = await integrations.get(s, app_id)
        return row, await limits.get(s, "integration", app_id), await limits.get(s, "user", app_id)

    row, own, users = common.run_db(config, work)
    data = {**integrations.as_dict(row), "limits": limits.shown(own), "user_limits": limits.shown(users)}
    if secrets:
        data["hash_token"], data["admin_token"] = integrations.secrets_of(key, row)
    common.emit(data, True, "")


@app.command("rotate")
def integrations_rotate(
    app_id: str,
    which: str = typer.Option("both", "--which", help="hash_token, admin_token or both"),
    config: str | None = common.ConfigOpt,
) -> None:
    """Replace an integration's secret(s); tokens signed with the old ones stop working."""
    if which not in ("hash_token", "admin_token", "both"):
        raise typer.BadParameter("--which must be hash_token, admin_token or both")
    key = server_key(load_settings(config))
    common.emit(
        {"app_id": app_id, **common.run_db(config, lambda s: integrations.rotate(s, key, app_id, which))}, True, ""
    )


@app.command("delete")
def integrations_delete(app_id: str, config: str | None = common.ConfigOpt) -> None:
    """Delete an integration with its conversations, memories and everything in them."""
    common.run_db(config, lambda s: integrations.remove(s, app_id))
    typer.echo(f"deleted {app_id}")
