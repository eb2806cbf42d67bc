"""``parley keys``: gateway keys for /v1, with their limits."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth import keys
from parley.cli import common
from parley.limits import store as limits
from parley.storage.models import GatewayKey

app = typer.Typer(help="Gateway keys for /v1.", no_args_is_help=True)


def _key_dict(row: GatewayKey, lim: limits.Limits) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.key_prefix,
        "created_at": row.created_at,
        "revoked": row.revoked_at is not None,
        "limits": limits.shown(lim),
    }


@app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name"),
    rpm: int | None = common.RpmOpt,
    tpm: int | None = common.TpmOpt,
    max_streams: int | None = common.StreamsOpt,
    budget_usd: float | None = common.BudgetOpt,
    budget_period: str | None = common.PeriodOpt,
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = common.ConfigOpt,
) -> None:
    """Create a gateway key; the key is shown once and stored hashed."""
    changes = common.limit_changes(rpm, tpm, max_streams, budget_usd, budget_period)

    async def work(s: AsyncSession) -> tuple[GatewayKey, str, limits.Limits]:
        limits.check(changes)  # before anything is made
        row, key = await keys.create_gateway_key(s, name)
        return row, key, await limits.set_limits(s, "key", row.id, **changes)

    row, key, lim = common.run_db(config, work)
    common.emit(
        {"id": row.id, "name": row.name, "key": key, "limits": limits.shown(lim)},
        as_json,
        f"{row.id}\t{key}\n(store it now: it is shown only once)",
    )


@app.command("update")
def keys_update(
    key_id: str,
    name: str | None = typer.Option(None, "--name"),
    rpm: int | None = common.RpmOpt,
    tpm: int | None = common.TpmOpt,
    max_streams: int | None = common.StreamsOpt,
    budget_usd: float | None = common.BudgetOpt,
    budget_period: str | None = common.PeriodOpt,
    config: str | None = common.ConfigOpt,
) -> None:
    """Rename a gateway key or change its limits; prints it as JSON."""
    changes = common.limit_changes(rpm, tpm, max_streams, budget_usd, budget_period)

    async def work(s: AsyncSession) -> dict[str, Any]:
        row = await keys.get_gateway_key(s, key_id)
        limits.check(changes)
        if name is not None:
            row = await keys.rename_gateway_key(s, key_id, name)
        return _key_dict(row, await limits.set_limits(s, "key", key_id, **changes))

    common.emit(common.run_db(config, work), True, "")


@app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json"), config: str | None = common.ConfigOpt) -> None:
    """List gateway keys (prefixes only) with their limits."""

    async def work(s: AsyncSession) -> list[dict[str, Any]]:
        set_ = await limits.of_scope(s, "key")
        return [_key_dict(r, set_.get(r.id, limits.NONE)) for r in await keys.list_keys(s, GatewayKey)]

    data = common.run_db(config, work)
    lines = [
        f"{d['id']}\t{d['name']}\t{d['prefix']}\t{'revoked' if d['revoked'] else 'active'}\t"
        f"{common.limits_line(d['limits'])}"
        for d in data
    ]
    common.emit(data, as_json, "\n".join(lines) or "(no keys)")


@app.command("revoke")
def keys_revoke(key_id: str, config: str | None = common.ConfigOpt) -> None:
    """Revoke a gateway key by id."""
    row = common.run_db(config, lambda s: keys.revoke(s, GatewayKey, key_id))
    typer.echo(f"revoked {row.id}")
