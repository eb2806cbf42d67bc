"""Making and hashing API keys. Keys are random, so a plain sha256 is a sound hash to store."""

from __future__ import annotations

import hashlib
import secrets


def new_key(prefix: str = "sk-") -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """Enough of a key for a person to tell keys apart in a list, not enough to use it."""
    return key[:10] + "…"


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)
