"""/api/project/{projectId}/integration/api: one project's assistant with server-kept sessions
(seeds 000 and 001)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from parley import projects
from parley.api.common import core, json_body, json_response, validate
from parley.api.docs import body
from parley.api.errors import openai_body
from parley.api.openai_schemas import ChatRequest
from parley.api.sse import DONE_LINE, PING_LINE, event, sse_response
from parley.auth.headers import bearer_or_bare
from parley.chat import sessions
from parley.chat.completions import ChatStream, complete, new_completion_id, open_stream
from parley.chat.reconcile import new_messages
from parley.chat.relay import PING
from parley.errors import BadRequest, ParleyError, Unauthorized
from parley.memory import retrieval
from parley.storage.models import Project, iso

router = APIRouter(prefix="/api/project/{project_id}/integration/api", tags=["Project integration"])


class ProjectChatRequest(ChatRequest):
    model: str | None = None  # type: ignore[assignment] - optional here: the project decides
    session_id: str | None = None  # deprecated: X-Session-ID is preferred


async def _project(request: Request, project_id: str) -> Project:
    c = core(request)
    async with c.sessions() as db:
        project = await projects.get(db, project_id)  # 404 for an unknown project
    identity = await c.project_keys.verify(bearer_or_bare(request.headers.get("authorization")))
    if identity.owner != project_id:
        raise Unauthorized("This API key does not belong to this project.")
    return project


def _session_id(request: Request, body_value: str | None) -> str:
    chosen = request.headers.get("x-session-id") or body_value
    return sessions.check_session_id(chosen) if chosen else sessions.new_session_id()


def _stored_form(m: dict[str, Any]) -> dict[str, Any]:
    keep = ("role", "content", "name", "tool_calls", "tool_call_id")
    return {k: m[k] for k in keep if m.get(k) is not None or k == "content"}


def _upstream_body(
    project: Project,
    req: ProjectChatRequest,
    raw: dict[str, Any],
    history: list[dict[str, Any]],
    instructions: list[dict[str, Any]],
) -> dict[str, Any]:
    body = {k: v for k, v in raw.items() if k not in ("session_id", "messages", "model")}
    system = [{"role": "system", "content": project.system_prompt}] if project.system_prompt else []
    body["messages"] = system + instructions + history
    for field in ("temperature", "top_p", "max_tokens"):
        if body.get(field) is None and getattr(project, field) is not None:
            body[field] = getattr(project, field)
    if not body.get("tools") and project.tools:
        body["tools"] = project.tools
    return body


@router.post(
    "/chat/completions",
    summary="Chat with the project's assistant (OpenAI-compatible)",
    openapi_extra=body(ProjectChatRequest),
)
async def chat_completions(project_id: str, request: Request) -> Response:
    project = await _project(request, project_id)
    raw = await json_body(request)
    req = validate(ProjectChatRequest, raw)
    session_id = _session_id(request, req.session_id)
    c = core(request)
    model_name = req.model if (req.model and project.allow_model_override) else project.model
    route = c.router.chat(model_name)
    label = model_name or projects.DEFAULT_MODEL_LABEL

    sent = [_stored_form(m) for m in raw["messages"]]
    instructions = [m for m in sent if m["role"] in ("system", "developer")]
    turns = [m for m in sent if m["role"] not in ("system", "developer")]

    hold = AsyncExitStack()
    async with c.sessions() as db:
        await sessions.ensure(db, project_id, session_id)
    await hold.enter_async_context(sessions.turn(c.sessions, project_id, session_id))
    try:
        async with c.sessions() as db:
            stored = await sessions.transcript(db, project_id, session_id)
            fresh = new_messages(stored, turns)
            history = stored + fresh
            if not history or history[-1]["role"] == "assistant":
                raise BadRequest("The messages add nothing for the assistant to answer.", param="messages")
            # The user's turn is kept even if the model then fails.
            await sessions.append(db, project_id, session_id, fresh)
        headers = {"x-session-id": session_id}
        hits = await _retrieve(c, project, fresh)
        unmatched = (project.memories or {}).get("unmatch_message")
        if hits == [] and unmatched:  # nothing relevant: the configured answer, and no model is called
            async with c.sessions() as db:
                await sessions.append(db, project_id, session_id, [{"role": "assistant", "content": unmatched}])
            await hold.aclose()
            return _canned(unmatched, label, session_id, bool(req.stream), headers)
        if hits:
            instructions = [*instructions, retrieval.sources_message(hits)]
        extra = {"references": retrieval.references(hits)} if hits else {}
        body = _upstream_body(project, req, raw, history, instructions)
        if not req.stream:
            result = await complete(route, body)
            reply = _stored_form(result["choices"][0]["message"])
            async with c.sessions() as db:
                await sessions.append(db, project_id, session_id, [reply])
            await hold.aclose()
            return json_response({**result, "model": label, "session_id": session_id, **extra}, headers=headers)
        stream = await open_stream(route, body, c.settings.sse_ping_interval)
    except BaseException:
        await hold.aclose()
        raise
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return sse_response(
        _sse(c, stream, project_id, session_id, label, include_usage, extra), headers=headers, on_close=hold.aclose
    )


async def _retrieve(c: Any, project: Project, fresh: list[dict[str, Any]]) -> list[Any] | None:
    """Sources for the newest user message, or None when the project names no memories."""
    settings = project.memories or {}
    query = next((m["content"] for m in reversed(fresh) if m["role"] == "user" and isinstance(m["content"], str)), None)
    if not settings.get("collections") or not query:
        return None
    async with c.sessions() as db:
        return await retrieval.retrieve(db, c.searcher, settings, query)


def _canned(text: str, label: str, session_id: str, stream: bool, headers: dict[str, str]) -> Response:
    """A reply that no model wrote (the project's unmatch message), in OpenAI's shapes."""
    base = {"id": new_completion_id(), "created": int(time.time()), "model": label, "session_id": session_id}
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    if not stream:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return json_response(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage}, headers=headers
        )

    async def chunks() -> AsyncIterator[bytes]:
        for delta, finish in (({"role": "assistant", "content": text}, None), ({}, "stop")):
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            yield event({**base, "object": "chat.completion.chunk", "choices": [choice]})
        yield DONE_LINE

    return sse_response(chunks(), headers=headers)


async def _sse(
    c: Any,
    stream: ChatStream,
    project_id: str,
    session_id: str,
    label: str,
    include_usage: bool,
    extra: dict[str, Any],
) -> AsyncIterator[bytes]:
    try:
        async for item in stream:
            if item is PING:
                yield PING_LINE
                continue
            yield event({**item, "model": label, "session_id": session_id, **extra})
            extra = {}  # the references ride on the first chunk only
        async with c.sessions() as db:  # stored before [DONE]: a client that saw [DONE] finds it
            await sessions.append(db, project_id, session_id, [_stored_form(stream.message)])
        if include_usage:
            yield event({**stream.usage_chunk(), "model": label, "session_id": session_id})
        yield DONE_LINE
    except ParleyError as exc:
        yield event(openai_body(exc))


class SessionCreate(BaseModel):
    session_id: str | None = None  # else the X-Session-ID header, else a new one


@router.post("/sessions", summary="Start a session", openapi_extra=body(SessionCreate, required=False))
async def create_session(project_id: str, request: Request) -> Response:
    await _project(request, project_id)
    raw = await request.body()
    chosen = None
    if raw.strip():
        data = await json_body(request)
        chosen = data.get("session_id") if isinstance(data, dict) else None
        if chosen is not None and not isinstance(chosen, str):
            raise BadRequest("Invalid value for 'session_id': it must be a string.", param="session_id")
    session_id = _session_id(request, chosen)
    async with core(request).sessions() as db:
        row = await sessions.ensure(db, project_id, session_id)
    return json_response(
        {"session_id": row.id, "created_at": iso(row.created_at)}, headers={"x-session-id": session_id}
    )


@router.get("/sessions/{session_id}", summary="A session and its transcript")
async def get_session(project_id: str, session_id: str, request: Request) -> Response:
    await _project(request, project_id)
    sessions.check_session_id(session_id)
    async with core(request).sessions() as db:
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
async def delete_session(project_id: str, session_id: str, request: Request) -> Response:
    await _project(request, project_id)
    sessions.check_session_id(session_id)
    async with core(request).sessions() as db:
        await sessions.remove(db, project_id, session_id)
    return json_response({"session_id": session_id, "deleted": True})
