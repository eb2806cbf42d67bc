"""The 500 a crash answers (``api/front.py`` catches it), in the dialect's error shape."""

from __future__ import annotations

import logging

from starlette.types import Scope, Send

from parley.api import request_id
from parley.api.errors import send_error
from parley.errors import ParleyError

log = logging.getLogger("parley.errors")
CRASH_MESSAGE = "The server had an error while processing your request."


def crash_error() -> ParleyError:
    """The 500 a crash answers, naming the request (as OpenAI's do) so a report can be traced."""
    rid = request_id.current.get()
    return ParleyError(CRASH_MESSAGE + (f" (request ID {rid})" if rid else ""))


async def answer_crash(scope: Scope, send: Send) -> None:
    await send_error(send, scope.get("path", ""), crash_error())
