"""``parley projects``: projects of the integration API, their settings, limits and keys."""

from __future__ import annotations

from typing import Any

import orjson
import typer
from sqlalchemy.ext.asyncio import AsyncSession

from parley import projects
from parley.auth import keys
from parley.cli import common
from parley.limits import store as limits
from parley.storage.models import Project, ProjectKey

app = typer.Typer(help="Projects for the integration API.", no_args_is_help=True)
keys_app = typer.Typer(help="More API keys for a project.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


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


@app.command("create")
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
    rpm: int | None = common.RpmOpt,
    tpm: int | None = common.TpmOpt,
    max_streams: int | None = common.StreamsOpt,
    budget_usd: float | None = common.BudgetOpt,
    budget_period: str | None = common.PeriodOpt,
    memory_mode: str | None = MemoryModeOpt,
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = common.ConfigOpt,
) -> None:
    """Create a project; prints its id and first API key (shown once, stored hashed)."""
    fields = _project_fields(locals())
    fields.pop("name", None)
    changes = common.limit_changes(rpm, tpm, max_streams, budget_usd, budget_period)

    async def work(s: AsyncSession) -> tuple[Project, str, limits.Limits]:
        limits.check(changes)  # before anything is made
        project, key = await projects.create(s, name, **fields)
        return project, key, await limits.set_limits(s, "project", project.id, **changes)

    project, key, lim = common.run_db(config, work)
    common.emit(
        {"id": project.id, "name": project.name, "api_key": key, "limits": limits.shown(lim)},
        as_json,
        f"{project.id}\t{key}\n(store the key now: it is shown only once)",
    )


def _project_dict(project: Project, lim: limits.Limits) -> dict[str, Any]:
    return {**projects.as_dict(project), "limits": limits.shown(lim)}


@app.command("list")
def projects_list(as_json: bool = typer.Option(False, "--json"), config: str | None = common.ConfigOpt) -> None:
    """List projects with their limits."""

    async def work(s: AsyncSession) -> list[dict[str, Any]]:
        set_ = await limits.of_scope(s, "project")
        return [_project_dict(p, set_.get(p.id, limits.NONE)) for p in await projects.list_all(s)]

    rows = common.run_db(config, work)
    common.emit(
        rows,
        as_json,
        "\n".join(
            f"{p['id']}\t{p['name']}\t{p['model'] or '(default model)'}\t{common.limits_line(p['limits'])}"
            for p in rows
        )
        or "(no projects)",
    )


@app.command("show")
def projects_show(project_id: str, config: str | None = common.ConfigOpt) -> None:
    """Show one project as JSON."""

    async def work(s: AsyncSession) -> dict[str, Any]:
        return _project_dict(await projects.get(s, project_id), await limits.get(s, "project", project_id))

    common.emit(common.run_db(config, work), True, "")


@app.command("update")
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
    rpm: int | None = common.RpmOpt,
    tpm: int | None = common.TpmOpt,
    max_streams: int | None = common.StreamsOpt,
    budget_usd: float | None = common.BudgetOpt,
    budget_period: str | None = common.PeriodOpt,
    memory_mode: str | None = MemoryModeOpt,
    config: str | None = common.ConfigOpt,
) -> None:
    """Change a project's settings or limits; prints it as JSON."""
    fields = _project_fields(locals())
    changes = common.limit_changes(rpm, tpm, max_streams, budget_usd, budget_period)

    async def work(s: AsyncSession) -> dict[str, Any]:
        await projects.get(s, project_id)
        limits.check(changes)
        project = await projects.update(s, project_id, **fields)
        return _project_dict(project, await limits.set_limits(s, "project", project_id, **changes))

    common.emit(common.run_db(config, work), True, "")


@app.command("delete")
def projects_delete(project_id: str, config: str | None = common.ConfigOpt) -> None:
    """Delete a project with its keys and sessions."""
    common.run_db(config, lambda s: projects.remove(s, project_id))
    typer.echo(f"deleted {project_id}")


@keys_app.command("create")
def project_keys_create(
    project_id: str, as_json: bool = typer.Option(False, "--json"), config: str | None = common.ConfigOpt
) -> None:
    """Another API key for a project."""

    async def work(s: AsyncSession) -> tuple[Any, str]:
        await projects.get(s, project_id)
        return await keys.create_project_key(s, project_id)

    row, key = common.run_db(config, work)
    common.emit({"id": row.id, "project_id": project_id, "api_key": key}, as_json, f"{row.id}\t{key}")


@keys_app.command("revoke")
def project_keys_revoke(key_id: str, config: str | None = common.ConfigOpt) -> None:
    """Revoke a project key by id."""
    row = common.run_db(config, lambda s: keys.revoke(s, ProjectKey, key_id))
    typer.echo(f"revoked {row.id}")
