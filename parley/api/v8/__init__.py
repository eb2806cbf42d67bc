"""/v8: conversations, messages, memories and files (docs/protocol.md)."""

from fastapi import APIRouter

from parley.api.v8 import conversations, files, memories, messages, models

router = APIRouter(prefix="/v8")
for module in (models, conversations, messages, files, memories):
    router.include_router(module.router)
