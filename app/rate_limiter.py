"""A per-key request rate limit whose counters live in Redis, so every API instance
shares them: a fixed one-second window per key."""

from __future__ import annotations

import time

import redis

from core.errors import ResourceExhausted
from core.keyspace import Keys

_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], 1000) end
return n
"""


class RateLimiter:
    """Refuses a key's calls past `limit` a second with RESOURCE_EXHAUSTED and RetryInfo."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._keys = keys
        self._count = client.register_script(_COUNT)

    def admit(self, key_id: str, limit: int) -> None:
        """Count one call of `key_id`; raise if it is over `limit` this second (0: no limit)."""
        if limit <= 0:
            return
        now = time.time()
        window = int(now)
        if int(self._count(keys=[self._keys.rate(key_id, window)])) > limit:
            raise ResourceExhausted(
                f"API key {key_id!r} is over its limit of {limit} requests a second",
                reason="RATE_LIMIT_EXCEEDED", metadata={"limit": str(limit)},
                retry_after=round(window + 1 - now, 3))
