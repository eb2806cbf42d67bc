"""One asyncio lock per key (a session, a conversation), dropped when nobody holds or waits."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Hashable

_locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = weakref.WeakValueDictionary()


def lock_for(key: Hashable) -> asyncio.Lock:
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = asyncio.Lock()
    return lock
