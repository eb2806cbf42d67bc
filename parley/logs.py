"""Structured (one JSON object per line) logging that never prints a secret."""

from __future__ import annotations

import logging
import re
import sys
import time

import orjson

from parley.api import request_id

# Anything shaped like a credential is masked before a record is written.
_SECRET = re.compile(r"(?i)\b(sk-|ek-|ak-|pk-)[A-Za-z0-9_\-+/=]{6,}|(bearer\s+)[^\s\"']+")


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


_make_record = logging.getLogRecordFactory()


def _record_with_request_id(*args: object, **kwargs: object) -> logging.LogRecord:
    # Stamped when the record is made, in the request's own context (a handler may format later).
    record = _make_record(*args, **kwargs)
    record.request_id = request_id.current.get()
    return record


def stamp_request_ids() -> None:
    """Make every log record carry the request ID of the request that logged it (idempotent)."""
    if logging.getLogRecordFactory() is not _record_with_request_id:
        logging.setLogRecordFactory(_record_with_request_id)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if (rid := getattr(record, "request_id", None)) is not None:
            entry["request_id"] = rid
        extra = getattr(record, "fields", None)
        if extra:
            entry.update({k: redact(v) if isinstance(v, str) else v for k, v in extra.items()})
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str = "info") -> None:
    stamp_request_ids()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log prints request lines; its own handlers would bypass redaction.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
