"""/v8/memories: knowledge bases, their contents and chunks, and search (docs/protocol.md).

Reads take any token of the integration; writes and the chunks view take an admin (ak-) token.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from parley import tokens
from parley.api.common import core, json_body, json_response, validate
from parley.api.docs import body
from parley.api.v8.auth import V8Caller, admin, user
from parley.config import LOCAL_EMBEDDING_MODEL
from parley.memory import store
from parley.storage.models import Memory

router = APIRouter(prefix="/memories", tags=["v8 memories"])
Strict = ConfigDict(extra="forbid")


class MemoryCreate(BaseModel):
    model_config = Strict
    name: Annotated[str, Field(min_length=1, max_length=255)]
    description: str | None = None
    embedding_model: str | None = None
    max_tokens_per_chunk: Annotated[int, Field(ge=16, le=8192)] = 1024
    overlap_tokens: Annotated[int, Field(ge=0)] = 0


class MemoryUpdate(BaseModel):
    model_config = Strict
    name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    description: str | None = None
    status: Literal["enabled", "disabled"] | None = None


class ContentBody(BaseModel):
    model_config = Strict
    content: Annotated[str, Field(min_length=1)]
    content_type: Literal["text", "markdown"] = "text"
    key: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    attrs: dict[str, Any] | None = None
    status: Literal["enabled", "disabled"] = "enabled"


class ContentFilter(BaseModel):
    model_config = Strict
    attrs: dict[str, Any] | None = None
    content_type: str | None = None
    content_keywords: str | None = None


class SearchBody(BaseModel):
    model_config = Strict
    query: Annotated[str, Field(min_length=1)]
    min_similarity: Annotated[float, Field(ge=0, le=1)] = 0.7
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    content_filter: ContentFilter | None = None
    mode: Literal["dense", "hybrid", "lexical"] = "dense"


async def _memory(request: Request, caller: V8Caller, memory_id: str) -> Memory:
    async with core(request).sessions() as db:
        return await store.get_memory(db, caller.app_id, memory_id)


@router.get("", summary="The integration's memories")
async def list_memories(request: Request, caller: V8Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        rows = await store.list_memories(db, caller.app_id)
    return json_response([store.memory_dict(m) for m in rows])


@router.post("", summary="Create a memory (admin)", openapi_extra=body(MemoryCreate))
async def create_memory(request: Request, caller: V8Caller = Depends(admin)) -> Response:
    req = validate(MemoryCreate, await json_body(request))
    c = core(request)
    async with c.sessions() as db:
        row = await store.create_memory(
            db,
            caller.app_id,
            req.name,
            embedding_model=req.embedding_model
            or caller.integration.default_embedding_model
            or c.router.default_embedding_model,
            available_models=c.router.embedding_names(),
            description=req.description,
            max_tokens_per_chunk=req.max_tokens_per_chunk,
            overlap_tokens=req.overlap_tokens,
        )
    return json_response(store.memory_dict(row))


@router.get("/{memory_id}", summary="One memory")
async def get_memory(memory_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    return json_response(store.memory_dict(await _memory(request, caller, memory_id)))


@router.put(
    "/{memory_id}", summary="Update a memory's name, description or status (admin)", openapi_extra=body(MemoryUpdate)
)
async def update_memory(memory_id: str, request: Request, caller: V8Caller = Depends(admin)) -> Response:
    req = validate(MemoryUpdate, await json_body(request))
    fields = {name: getattr(req, name) for name in req.model_fields_set}
    async with core(request).sessions() as db:
        row = await store.update_memory(db, caller.app_id, memory_id, fields)
    return json_response(store.memory_dict(row))


@router.delete("/{memory_id}", summary="Delete a memory with its contents, chunks and vectors (admin)")
async def delete_memory(memory_id: str, request: Request, caller: V8Caller = Depends(admin)) -> Response:
    c = core(request)
    async with c.sessions() as db:
        await store.delete_memory(db, await store.get_memory(db, caller.app_id, memory_id))
    searcher = c.searcher.loaded  # never loaded: no index of this memory is kept
    if searcher is not None:
        searcher.indexes.forget(memory_id)
    return json_response({"message": "记忆库删除成功"})


@router.get("/{memory_id}/contents", summary="List contents, by type and keywords")
async def list_contents(memory_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    spec = {"content_type": request.query_params.get("type"), "content_keywords": request.query_params.get("keywords")}
    async with core(request).sessions() as db:
        memory = await store.get_memory(db, caller.app_id, memory_id)
        rows = await store.list_contents(db, memory, {k: v for k, v in spec.items() if v})
    return json_response([store.content_dict(r) for r in rows])


@router.post(
    "/{memory_id}/contents-filter", summary="List contents with attribute filters", openapi_extra=body(ContentFilter)
)
async def filter_contents(memory_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    raw = await request.body()
    spec = validate(ContentFilter, await json_body(request) if raw.strip() else {})
    async with core(request).sessions() as db:
        memory = await store.get_memory(db, caller.app_id, memory_id)
        rows = await store.list_contents(db, memory, spec.model_dump(exclude_none=True))
    return json_response([store.content_dict(r) for r in rows])


@router.get("/{memory_id}/contents/{content_id}", summary="One content")
async def get_content(memory_id: str, content_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    async with core(request).sessions() as db:
        memory = await store.get_memory(db, caller.app_id, memory_id)
        return json_response(store.content_dict(await store.get_content(db, memory, content_id)))


@router.get(
    "/{memory_id}/contents/{content_id}/chunks", summary="A content's chunks and their embedding status (admin)"
)
async def get_chunks(memory_id: str, content_id: str, request: Request, caller: V8Caller = Depends(admin)) -> Response:
    async with core(request).sessions() as db:
        memory = await store.get_memory(db, caller.app_id, memory_id)
        content = await store.get_content(db, memory, content_id)
        return json_response([store.chunk_dict(c) for c in await store.chunks_of(db, content)])


async def _put(request: Request, caller: V8Caller, memory_id: str, content_id: str | None) -> tuple[Any, bool]:
    req = validate(ContentBody, await json_body(request))
    c = core(request)
    await tokens.ready()  # chunking counts tokens
    async with c.sessions() as db:
        memory = await store.get_memory(db, caller.app_id, memory_id)
        content, created = await store.put_content(db, memory, req.model_dump(), content_id)
    c.embedder.wake()
    return content, created


@router.post(
    "/{memory_id}/contents",
    summary="Create a content, or update the one with the same key (admin)",
    openapi_extra=body(ContentBody),
)
async def create_content(memory_id: str, request: Request, caller: V8Caller = Depends(admin)) -> Response:
    content, created = await _put(request, caller, memory_id, None)
    return json_response(
        {"success": True, "message": "content created" if created else "content updated", "content_id": content.id}
    )


@router.put("/{memory_id}/contents/{content_id}", summary="Replace a content (admin)", openapi_extra=body(ContentBody))
async def update_content(
    memory_id: str, content_id: str, request: Request, caller: V8Caller = Depends(admin)
) -> Response:
    await _put(request, caller, memory_id, content_id)
    return json_response({"success": True, "message": "content updated"})


@router.delete("/{memory_id}/contents/{content_id}", summary="Delete a content by id, or by key as _KEY (admin)")
async def delete_content(
    memory_id: str, content_id: str, request: Request, caller: V8Caller = Depends(admin)
) -> Response:
    async with core(request).sessions() as db:
        memory = await store.get_memory(db, caller.app_id, memory_id)
        await store.delete_content(db, memory, content_id)
    return json_response({"success": True, "message": "content deleted"})


async def _search(request: Request, caller: V8Caller, memory_id: str, contents: bool) -> Response:
    req = validate(SearchBody, await json_body(request))
    c = core(request)
    searcher = await c.searcher.get()  # before a connection is taken: the first loads modules
    async with c.sessions() as db:
        memory = await store.get_memory(db, caller.app_id, memory_id)
        if memory.status != "enabled":
            return json_response([])
        if memory.embedding_model == LOCAL_EMBEDDING_MODEL:
            await tokens.ready()  # the packaged model counts the tokens of the query
        run = searcher.search_contents if contents else searcher.search
        hits = await run(
            db,
            memory,
            req.query,
            limit=req.limit,
            min_similarity=req.min_similarity,
            content_filter=req.content_filter.model_dump(exclude_none=True) if req.content_filter else None,
            mode=req.mode,
        )
    return json_response([h.content_dict() if contents else h.chunk_dict() for h in hits])


@router.post(
    "/{memory_id}/embeddings-search-chunks", summary="Search chunks by similarity", openapi_extra=body(SearchBody)
)
async def search_chunks(memory_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    return await _search(request, caller, memory_id, contents=False)


@router.post(
    "/{memory_id}/embeddings-search-contents",
    summary="Search contents by their best chunk",
    openapi_extra=body(SearchBody),
)
async def search_contents(memory_id: str, request: Request, caller: V8Caller = Depends(user)) -> Response:
    return await _search(request, caller, memory_id, contents=True)
