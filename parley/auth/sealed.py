"""Encryption at rest for secrets the server must read back.

The v8 protocol signs tokens with md5(secret + …), so the server needs each integration's
secrets in clear to verify a token: a one-way hash cannot serve. They are sealed with Fernet
(AES-128-CBC + HMAC-SHA256) under a server key from ``secret_key`` or ``secret_key_file``
(generated on first use), so a copy of the database alone reveals nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from parley.config import Settings


def server_key(settings: Settings) -> Fernet:
    if settings.secret_key is not None:
        return Fernet(settings.secret_key.get_secret_value().encode())
    path = Path(settings.secret_key_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
    return Fernet(path.read_bytes().strip())


def seal(key: Fernet, secret: str) -> str:
    return key.encrypt(secret.encode()).decode()


def unseal(key: Fernet, sealed: str) -> str | None:
    try:
        return key.decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None  # sealed under another server key: treat as no secret at all
