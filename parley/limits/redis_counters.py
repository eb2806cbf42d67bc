"""The shared limit counters in Redis (``redis_url``): each change is one Lua script, atomic.

Anchored windows are a key's time to live; calendar windows put the period's start in the key
and expire at its end. Stream slots are a sorted set of slot ids scored by when they expire,
so a crashed holder's slots age out.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from redis.asyncio import Redis

from parley.limits.counters import Grant, Reading, SlotGrant, Window

PREFIX = "parley:quota:"

# KEYS[1]; ARGV: n, limit, window ms. Returns {granted, used, ms left in the window}.
_GRANT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
local limit = tonumber(ARGV[2])
if used >= limit then return {0, tostring(used), ttl} end
local give = math.min(tonumber(ARGV[1]), limit - used)
local now = redis.call('INCRBY', KEYS[1], give)
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  ttl = tonumber(ARGV[3])
end
return {give, tostring(now), ttl}
"""

# KEYS[1]; ARGV: amount, expiry (ms to live, or the epoch ms it ends at), '1' for the latter.
_ADD = """
local now = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  if ARGV[3] == '1' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  ttl = redis.call('PTTL', KEYS[1])
end
return {now, ttl}
"""

# KEYS[1] the slots; ARGV: now ms, expiry ms, limit, then the ids wanted. Returns
# {slots given (the first ids), slots held after}.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local held = redis.call('ZCARD', KEYS[1])
local give = math.max(0, math.min(#ARGV - 3, tonumber(ARGV[3]) - held))
for i = 1, give do redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3 + i]) end
return {give, held + give}
"""


class RedisCounters:
    def __init__(self, url: str) -> None:
        # Every call is bounded here, not by its caller (quota.py never cancels one half way).
        self._redis: Redis = Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
        self._grant = self._redis.register_script(_GRANT)
        self._add = self._redis.register_script(_ADD)
        self._acquire = self._redis.register_script(_ACQUIRE)

    @staticmethod
    def _key(key: str, window: Window) -> str:
        # A calendar period is its own key, so the next period starts from nothing.
        return f"{PREFIX}{key}:{int(window.start)}" if window.calendar else PREFIX + key

    async def grant(self, key: str, n: int, limit: int, window: Window) -> Grant:
        give, used, ttl = await self._grant(keys=[self._key(key, window)], args=[n, limit, int(window.span * 1000)])
        return Grant(int(give), float(used), time.time() + max(int(ttl), 0) / 1000)

    async def add(self, key: str, amount: float, window: Window) -> Reading:
        if window.calendar:
            args: list[Any] = [repr(float(amount)), int(window.end * 1000), "1"]
        else:
            args = [repr(float(amount)), int(window.span * 1000), "0"]
        used, ttl = await self._add(keys=[self._key(key, window)], args=args)
        return Reading(float(used), time.time() + max(int(ttl), 0) / 1000)

    async def read(self, items: list[tuple[str, Window]]) -> dict[str, Reading]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, window in items:
                pipe.get(self._key(key, window))
                pipe.pttl(self._key(key, window))
            replies = await pipe.execute()
        stamp = time.time()
        out = {}
        for i, (key, window) in enumerate(items):
            used, ttl = replies[2 * i], int(replies[2 * i + 1])
            if used is None or ttl < 0:
                out[key] = Reading(0.0, window.end)
            else:
                out[key] = Reading(float(used), stamp + ttl / 1000)
        return out

    async def acquire_slots(self, key: str, n: int, limit: int, ttl: float) -> SlotGrant:
        ids = [secrets.token_hex(16) for _ in range(n)]
        stamp = time.time()
        given, held = await self._acquire(
            keys=[PREFIX + key], args=[int(stamp * 1000), int((stamp + ttl) * 1000), limit, *ids]
        )
        return SlotGrant(ids[: int(given)], int(held), stamp + ttl)

    async def release_slots(self, key: str, slots: list[str]) -> None:
        await self._redis.zrem(PREFIX + key, *slots)

    async def aclose(self) -> None:
        await self._redis.aclose()
