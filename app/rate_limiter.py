"""Request rate limits whose counts live in Redis, so every API instance shares them.

A sliding one-second window: each admitted call is a member of a sorted set scored by its
time, so no second ever holds more than the limit, wherever its boundaries fall.
"""

from __future__ import annotations

import time
import uuid

import redis

from core.errors import ResourceExhausted
from core.keyspace import Keys

WINDOW_MS = 1000

# KEYS[1]: the window's sorted set. ARGV: now (ms), window (ms), limit, a unique member.
# Returns 0 when admitted, else the milliseconds until the oldest call leaves the window.
_ADMIT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


class RateLimiter:
    """Refuses calls past a limit a second with RESOURCE_EXHAUSTED and RetryInfo."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._keys = keys
        self._admit = client.register_script(_ADMIT)

    def admit(self, key_id: str, limit: int) -> None:
        """Count one call of API key `key_id`; raise if it is over `limit` (0: no limit)."""
        self._count(self._keys.rate(key_id), limit,
                    f"API key {key_id!r} is over its limit of {limit} requests a second")

    def admit_address(self, address: str, limit: int) -> None:
        """Count one refused or anonymous call from client `address`; raise past `limit`."""
        self._count(self._keys.address_rate(address), limit,
                    f"too many refused or unauthenticated requests from {address}; "
                    f"the limit is {limit} a second")

    def _count(self, key: str, limit: int, message: str) -> None:
        if limit <= 0:
            return
        wait_ms = int(self._admit(keys=[key], args=[int(time.time() * 1000), WINDOW_MS, limit,
                                                    uuid.uuid4().hex]))
        if wait_ms:
            raise ResourceExhausted(message, reason="RATE_LIMIT_EXCEEDED",
                                    metadata={"limit": str(limit)}, retry_after=wait_ms / 1000)
