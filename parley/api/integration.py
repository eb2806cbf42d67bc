"""/api/project/{projectId}/integration/api: one project's assistant with server-kept sessions
(docs/protocol.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.responses import Response

from parley import projects
from parley.api.common import json_body, json_response, request_id, validate
from parley.api.docs import body
from parley.api.openai_encoder import OpenAIEncoder
from parley.api.openai_schemas import ChatRequest
from parley.auth.headers import bearer_or_bare
from parley.caller import Caller
from parley.chat import sessions
from parley.chat.turn import TurnRequest, run
from parley.core import CoreDep
from parley.errors import BadRequest, Unauthorized
from parley.storage.models import Project, iso

router = APIRouter(prefix="/api/project/{project_id}/integration/api", tags=["Project integration"])


class ProjectChatRequest(ChatRequest):
    model: str | None = None  # type: ignore[assignment]  # optional here: the project decides
    session_id: str | None = None  # deprecated: X-Session-ID is preferred


async def _project(project_id: str, request: Request, core: CoreDep) -> tuple[Project, Caller]:
    async with core.sessions() as db:
        project = await projects.get(db, project_id)  # 404 for an unknown project
    identity = await core.project_keys.verify(bearer_or_bare(request.headers.get("authorization")))
    if identity.owner != project_id:
        raise Unauthorized("This API key does not belong to this project.")
    caller = Caller("project", request_id(request), "project", key_id=identity.id, project_id=project_id)
    return project, caller


ProjectCaller = Annotated[tuple[Project, Caller], Depends(_project)]


def _session_id(request: Request, body_value: str | None) -> str:
    chosen = request.headers.get("x-session-id") or body_value
    return sessions.check_session_id(chosen) if chosen else sessions.new_session_id()


_NOT_PARAMS = ("session_id", "messages", "model", "stream", "stream_options")


@router.post(
    "/chat/completions",
    summary="Chat with the project's assistant (OpenAI-compatible)",
    openapi_extra=body(ProjectChatRequest),
)
async def chat_completions(request: Request, core: CoreDep, who: ProjectCaller) -> Response:
    project, caller = who
    raw = await json_body(request)
    req = validate(ProjectChatRequest, raw)
    session_id = _session_id(request, req.session_id)
    model_name = req.model if (req.model and project.allow_model_override) else project.model

    sent = [sessions.stored_form(m) for m in raw["messages"]]
    instructions = [m for m in sent if m["role"] in ("system", "developer")]
    params = {k: v for k, v in raw.items() if k not in _NOT_PARAMS}
    for name in ("temperature", "top_p", "max_tokens"):
        if params.get(name) is None and getattr(project, name) is not None:
            params[name] = getattr(project, name)
    if not params.get("tools") and project.tools:
        params["tools"] = project.tools
    turn = TurnRequest(
        caller=caller,
        model=model_name,
        messages=[],
        params=params,
        stream=bool(req.stream),
        label=model_name or projects.DEFAULT_MODEL_LABEL,
        system=([{"role": "system", "content": project.system_prompt}] if project.system_prompt else []) + instructions,
        transcript=sessions.SessionTranscript(
            core.sessions, project.id, session_id, [m for m in sent if m["role"] not in ("system", "developer")]
        ),
        memories=project.memories,
    )
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    encoder = OpenAIEncoder(include_usage, headers={"x-session-id": session_id}, extra={"session_id": session_id})
    return await run(core, turn, encoder)


class SessionCreate(BaseModel):
    session_id: str | None = None  # else the X-Session-ID header, else a new one


@router.post("/sessions", summary="Start a session", openapi_extra=body(SessionCreate, required=False))
async def create_session(request: Request, core: CoreDep, who: ProjectCaller) -> Response:
    project_id = who[0].id
    raw = await request.body()
    chosen = None
    if raw.strip():
        data = await json_body(request)
        chosen = data.get("session_id") if isinstance(data, dict) else None
        if chosen is not None and not isinstance(chosen, str):
            raise BadRequest("Invalid value for 'session_id': it must be a string.", param="session_id")
    session_id = _session_id(request, chosen)
    async with core.sessions() as db:
        row = await sessions.ensure(db, project_id, session_id)
    return json_response(
        {"session_id": row.id, "created_at": iso(row.created_at)}, headers={"x-session-id": session_id}
    )


@router.get("/sessions/{session_id}", summary="A session and its transcript")
async def get_session(session_id: str, core: CoreDep, who: ProjectCaller) -> Response:
    project_id = who[0].id
    sessions.check_session_id(session_id)
    async with core.sessions() as db:
        row = await sessions.get(db, project_id, session_id)
        messages = await sessions.transcript(db, project_id, session_id)
    return json_response(
        {
            "session_id": row.id,
            "messages": messages,
            "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at),
        }
    )


@router.delete("/sessions/{session_id}", summary="Delete a session and its transcript")
async def delete_session(session_id: str, core: CoreDep, who: ProjectCaller) -> Response:
    project_id = who[0].id
    sessions.check_session_id(session_id)
    async with core.sessions() as db:
        await sessions.remove(db, project_id, session_id)
    return json_response({"session_id": session_id, "deleted": True})
