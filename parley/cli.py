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
memories_app = typer.Typer(help="v8 memories (knowledge bases).", no_args_is_help=True)
app.add_typer(memories_app, name="memories")
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
    memory_mode: str | None = MemoryModeOpt,
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOpt,
) -> None:
    """Create a project; prints its id and first API key (shown once, stored hashed)."""
    fields = _project_fields(locals())
    fields.pop("name", None)
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
    memory: list[str] | None = MemoryOpt,
    memory_limit: int | None = MemoryLimitOpt,
    memory_min_similarity: float | None = MemoryMinOpt,
    unmatch_message: str | None = UnmatchOpt,
    memory_mode: str | None = MemoryModeOpt,
    config: str | None = ConfigOpt,
) -> None:
    """Change a project's settings; prints it as JSON."""
    fields = _project_fields(locals())
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
    from parley.memory.store import memory_dict
    from parley.storage.models import Memory

    settings = _settings(config)
    model = embedding_model or settings.default_embedding_model

    async def work(s: AsyncSession) -> Memory:
        await integrations.get(s, app_id)
        row = Memory(
            integration_id=app_id,
            name=name,
            description=description,
            embedding_model=model,
            max_tokens_per_chunk=max_tokens_per_chunk,
            overlap_tokens=overlap_tokens,
        )
        s.add(row)
        await s.commit()
        return row

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


async def _wait_embedded(sessions: Any, memory_id: str, within: float) -> None:
    from sqlalchemy import func, select

    from parley.storage.models import MemoryChunk

    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        async with sessions() as s:
            queued = await s.scalar(
                select(func.count()).where(
                    MemoryChunk.memory_id == memory_id, MemoryChunk.embedding_status.in_(("pending", "processing"))
                )
            )
        if not queued:
            return
        await asyncio.sleep(0.2)


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
    from parley.memory.jobs import EmbeddingWorker
    from parley.providers.routing import Router
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
        with typer.progressbar(files, label="Reading", show_pos=True) as bar:
            for path in bar:
                outcome = await ingest_file(s, memory, path)
                outcomes[outcome.split(":")[0]] += 1
                if outcome.startswith("failed"):
                    typer.echo(f"\n{path}: {outcome}", err=True)
        if embed:
            router = Router(settings)
            worker = EmbeddingWorker(db.sessionmaker(s.bind), router)  # type: ignore[arg-type]
            done = 0
            while n := await worker.run_once():
                done += n
                typer.echo(f"\rEmbedded {done} chunks", nl=False)
            # A running server's worker may hold some of them: return once every chunk is ready.
            await _wait_embedded(db.sessionmaker(s.bind), memory_id, settings.embedding_lease * 2)  # type: ignore[arg-type]
            typer.echo(f"\rEmbedded {done} chunks here; every chunk of the memory is embedded")
            await router.aclose()
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
