"""``parley memories``: v8 memories (knowledge bases): create, list, ingest files, calibrate."""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley import integrations
from parley.cli import common
from parley.config import Settings, load_settings
from parley.errors import ParleyError
from parley.storage import db

app = typer.Typer(help="v8 memories (knowledge bases).", no_args_is_help=True)


@app.command("create")
def memories_create(
    app_id: str = typer.Option(..., "--app-id", help="The integration that owns it."),
    name: str = typer.Option(..., "--name"),
    description: str | None = typer.Option(None, "--description"),
    embedding_model: str | None = typer.Option(None, "--embedding-model"),
    max_tokens_per_chunk: int = typer.Option(1024, "--max-tokens-per-chunk", min=16),
    overlap_tokens: int = typer.Option(0, "--overlap-tokens", min=0),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = common.ConfigOpt,
) -> None:
    """Create a memory for an integration."""
    from parley.memory.store import create_memory, memory_dict
    from parley.storage.models import Memory

    settings = load_settings(config)

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

    row = common.run_db(config, work)
    common.emit(memory_dict(row), as_json, f"{row.id}\t{row.name}")


@app.command("list")
def memories_list(
    app_id: str = typer.Option(..., "--app-id"),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = common.ConfigOpt,
) -> None:
    """List an integration's memories."""
    from parley.memory.store import list_memories, memory_dict

    rows = [memory_dict(m) for m in common.run_db(config, lambda s: list_memories(s, app_id))]
    common.emit(rows, as_json, "\n".join(f"{m['id']}\t{m['name']}\t{m['embedding_model']}" for m in rows) or "(none)")


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


@app.command("ingest")
def memories_ingest(
    memory_id: str,
    paths: list[str] = typer.Argument(..., help="Files or folders (folders are read recursively)."),
    embed: bool = typer.Option(True, "--embed/--no-embed", help="Embed here and now, or leave it to the server."),
    config: str | None = common.ConfigOpt,
) -> None:
    """Add files to a memory: text extracted, keyed by path (re-running updates), then embedded."""
    from collections import Counter

    from parley.memory.ingest import files_under, ingest_file, supported
    from parley.storage.models import Memory

    settings = load_settings(config)
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

    outcomes = common.run_db(config, work)
    typer.echo(", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())) or "nothing to ingest")


@app.command("calibrate")
def memories_calibrate(
    memory_id: str,
    sample: int = typer.Option(200, "--sample", min=10, help="Chunks to draw test questions from."),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = common.ConfigOpt,
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

    settings = load_settings(config)

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

    fit = common.run_db(config, work)
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
    common.emit(fit, as_json, "\n".join(lines))
