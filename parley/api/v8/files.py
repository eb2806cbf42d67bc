"""POST /v8/files/extract: the text of an uploaded file, by its extension (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from typing import BinaryIO

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from parley.api.common import json_response
from parley.api.docs import upload
from parley.api.v8.auth import V8Caller, user
from parley.errors import BadRequest, ParleyError
from parley.extract import ExtractionError, UnsupportedType
from parley.extract.registry import EXTRACTORS, extension
from parley.extract.sandbox import default_sandbox

router = APIRouter(prefix="/files", tags=["v8 files"])


def _spill(source: BinaryIO, fd: int) -> int:
    """Copy the upload to a named file the parser process can open; return its size."""
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
        return out.tell()


@router.post(
    "/extract", summary="Extract the text of an uploaded file (multipart field `file`)", openapi_extra=upload("file")
)
async def extract(request: Request, caller: V8Caller = Depends(user)) -> Response:
    # The body streams to a temporary file as it arrives (python-multipart spools past 1 MiB);
    # api/entry.py stops it with 413 past max_upload_bytes.
    async with request.form(max_files=1, max_fields=20) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise BadRequest("File is required")
        ext = extension(upload.filename)
        if not ext:
            raise BadRequest("File extension is required")
        if ext not in EXTRACTORS:
            raise ParleyError(str(UnsupportedType(ext)))
        fd, path = tempfile.mkstemp(prefix="parley-upload-", suffix="." + ext)
        try:
            await upload.seek(0)
            if await asyncio.to_thread(_spill, upload.file, fd) == 0:
                raise BadRequest("File is empty")
            try:
                content, metadata = await default_sandbox().run_path(path, upload.filename)
            except ExtractionError as exc:
                raise ParleyError(str(exc)) from None
        finally:
            os.unlink(path)
    return json_response({"content": content, "metadata": metadata})
