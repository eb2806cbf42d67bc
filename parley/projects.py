"""Projects: one configured assistant each (model, prompt, sampling, default tools)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth.keygen import new_id
from parley.auth.keys import create_project_key
from parley.errors import BadRequest, NotFound
from parley.storage.models import Limit, Project

DEFAULT_MODEL_LABEL = "pathway-default"  # what responses name when a project names no model
EDITABLE = (
    "name",
    "model",
    "allow_model_override",
    "system_prompt",
    "temperature",
    "top_p",
    "max_tokens",
    "tools",
    "memories",
)
MEMORY_MODES = ("dense", "lexical", "hybrid")


def _memories(current: dict[str, Any] | None, fields: dict[str, Any]) -> None:
    """Fold ``memory_mode`` into ``memories`` and check the mode (retrieval's default is hybrid)."""
    mode = fields.pop("memory_mode", None)
    if mode is not None:
        fields["memories"] = {**(fields.get("memories") or current or {}), "mode": mode}
    chosen = (fields.get("memories") or {}).get("mode")
    if chosen is not None and chosen not in MEMORY_MODES:
        choices = ", ".join(MEMORY_MODES)
        raise BadRequest(f"memories.mode must be one of {choices}, not {chosen!r}", param="memories.mode")


async def create(db: AsyncSession, name: str, **fields: Any) -> tuple[Project, str]:
    _memories(None, fields)
    project = Project(id=new_id("prj_"), name=name, **{k: v for k, v in fields.items() if k in EDITABLE})
    db.add(project)
    await db.commit()
    _, key = await create_project_key(db, project.id)
    return project, key


async def get(db: AsyncSession, project_id: str) -> Project:
    project = await db.get(Project, project_id)
    if project is None:
        raise NotFound(f"Project {project_id!r} not found", code="project_not_found")
    return project


async def list_all(db: AsyncSession) -> list[Project]:
    return list((await db.scalars(select(Project).order_by(Project.created_at))).all())


async def update(db: AsyncSession, project_id: str, **fields: Any) -> Project:
    project = await get(db, project_id)
    _memories(project.memories, fields)
    for key, value in fields.items():
        if key in EDITABLE:
            setattr(project, key, value)
    await db.commit()
    return project


async def remove(db: AsyncSession, project_id: str) -> None:
    await get(db, project_id)
    # Keys, sessions and their messages go with it: the database cascades (see storage/models.py).
    # Limits name their subject without a foreign key (one table for every scope): removed here.
    await db.execute(delete(Limit).where(Limit.scope == "project", Limit.subject_id == project_id))
    await db.execute(delete(Project).where(Project.id == project_id))
    await db.commit()


def as_dict(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "model": p.model,
        "allow_model_override": p.allow_model_override,
        "system_prompt": p.system_prompt,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "max_tokens": p.max_tokens,
        "tools": p.tools,
        "memories": p.memories,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }
