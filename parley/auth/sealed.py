"""Encryption at rest for secrets the server must read back.

The v8 protocol signs tokens with md5(secret + …), so the server needs each integration's
secrets in clear to verify a token: a one-way hash cannot serve. They are sealed with Fernet
(AES-128-CBC + HMAC-SHA256) under a server key from ``secret_key`` or ``secret_key_file``
(generated on first use), so a copy of the database alone reveals nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from parley.config import Settings

if TYPE_CHECKING:
    from cryptography.fernet import Fernet


class ServerKey:
    """The server's sealing key, read and checked at start.

    ``cryptography`` is imported on the first seal or unseal: it keeps 7 MB resident, which a
    worker that never sees a v8 token does not need, and takes ~30 ms to import, which the
    first v8 request of a worker spends in a thread (``ready``), not on the event loop.
    """

    def __init__(self, raw: bytes) -> None:
        try:
            decoded = base64.urlsafe_b64decode(raw)
        except binascii.Error:
            decoded = b""
        if len(decoded) != 32:  # the check Fernet makes of its key, made here without it
            raise ValueError("The server key must be 32 url-safe base64-encoded bytes (a Fernet key)")
        self._raw = raw

    @functools.cached_property
    def fernet(self) -> Fernet:
        from cryptography.fernet import Fernet

        return Fernet(self._raw)

    async def ready(self) -> None:
        if "fernet" not in self.__dict__:
            await asyncio.to_thread(lambda: self.fernet)


def server_key(settings: Settings) -> ServerKey:
    if settings.secret_key is not None:
        return ServerKey(settings.secret_key.get_secret_value().encode())
    path = Path(settings.secret_key_file)
    if not path.exists():
        _make_key_file(path)
    return ServerKey(path.read_bytes().strip())


def _make_key_file(path: Path) -> None:
    """A new key at ``path``, unless another process makes one first. The workers of a first
    `parley serve --workers N` all get here together: the key is written whole under a name of
    its own and then linked into place, so one key wins and none reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = base64.urlsafe_b64encode(os.urandom(32))  # what Fernet.generate_key() makes
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-key-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another worker's key is in place: it is the one read
    finally:
        os.unlink(tmp)


def seal(key: ServerKey, secret: str) -> str:
    return key.fernet.encrypt(secret.encode()).decode()


def unseal(key: ServerKey, sealed: str) -> str | None:
    from cryptography.fernet import InvalidToken

    try:
        return key.fernet.decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None  # sealed under another server key: treat as no secret at all
