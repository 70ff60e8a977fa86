"""Caps on long requests (`:wait` and both `:watch` forms), per key and per deployment.

A parked long request holds a server thread for up to a minute (`:wait`) or five (`:watch`);
without a cap one key could hold every thread and starve everyone, health checks included.
Each such request takes a slot first: a member of its key's and of the deployment's sorted
sets in Redis, scored by when its lease runs out, so the count is shared by every API
process. A thread in each process renews the leases of the slots the process holds; a
process that dies stops renewing and its slots free themselves within
OPQUEUE_LONG_REQUEST_LEASE_SECONDS. Past a cap the call is refused at once with
RESOURCE_EXHAUSTED and RetryInfo. The same `hold` serves HTTP views and gRPC calls.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from core.config import Settings, env_name
from core.errors import ResourceExhausted
from core.keyspace import Keys

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5.0
DEPLOYMENT = "*"  # the scope of the deployment-wide set; key ids never take this form

# KEYS: the key's set, the deployment's set. ARGV: now (ms), lease end (ms), lease (ms),
# per-key cap, deployment cap (0: none), the slot's member. Returns 0 once the slot is
# held, 1 if the key is at its cap, 2 if the deployment is.
_ACQUIRE = """
local now = tonumber(ARGV[1])
for i, cap in ipairs({tonumber(ARGV[4]), tonumber(ARGV[5])}) do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if cap > 0 and redis.call('ZCARD', KEYS[i]) >= cap then return i end
end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[6])
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
return 0
"""


@dataclass(frozen=True)
class Slot:
    """One held long-request slot."""

    key_id: str
    member: str


class LongRequests:
    """Counts the long requests in flight and refuses those past the caps."""

    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings) -> None:
        self._client = client
        self._keys = keys
        self._per_key = settings.max_long_requests_per_key
        self._total = settings.max_long_requests
        self._lease_ms = int(settings.long_request_lease_seconds * 1000)
        self._capped = self._per_key > 0 or self._total > 0
        self._acquire = client.register_script(_ACQUIRE)
        self._held: set[Slot] = set()
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    @contextmanager
    def hold(self, key_id: str) -> Iterator[Slot]:
        """A slot for one long request of `key_id` while the block runs."""
        slot = self.acquire(key_id)
        try:
            yield slot
        finally:
            self.release(slot)

    def acquire(self, key_id: str) -> Slot:
        """Take a slot for `key_id`; RESOURCE_EXHAUSTED if a cap is reached. Pair with
        `release` (or use `hold`)."""
        slot = Slot(key_id, uuid.uuid4().hex)
        if not self._capped:  # nothing to count: no Redis call at all
            return slot
        now = _now_ms()
        full = int(self._acquire(keys=self._sets(key_id), args=[
            now, now + self._lease_ms, self._lease_ms, self._per_key, self._total,
            slot.member]))
        if full == 1:
            raise self._exhausted(
                f"API key {key_id!r} already has {self._per_key} :wait or :watch calls open",
                "max_long_requests_per_key", self._per_key)
        if full == 2:
            raise self._exhausted(
                f"the server already has {self._total} :wait or :watch calls open",
                "max_long_requests", self._total)
        with self._lock:
            self._held.add(slot)
        self._ensure_renewing()
        return slot

    def release(self, slot: Slot) -> None:
        """Give a slot back (at once; a lost release frees itself when its lease ends)."""
        if not self._capped:
            return
        with self._lock:
            self._held.discard(slot)
        with self._client.pipeline(transaction=False) as pipe:
            for key in self._sets(slot.key_id):
                pipe.zrem(key, slot.member)
            pipe.execute()

    def _sets(self, key_id: str) -> list[str]:
        return [self._keys.long_requests(f"key:{key_id}"), self._keys.long_requests(DEPLOYMENT)]

    def _exhausted(self, message: str, setting: str, cap: int) -> ResourceExhausted:
        return ResourceExhausted(
            f"{message}; close one or retry later (the cap is {env_name(setting)})",
            reason="TOO_MANY_LONG_REQUESTS", metadata={"limit": str(cap)},
            retry_after=RETRY_AFTER_SECONDS)

    def _ensure_renewing(self) -> None:
        # Started lazily so that each web worker process (after fork) has its own thread.
        with self._lock:
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(target=self._renew_forever, daemon=True,
                                                 name="opqueue-long-requests")
                self._renewer.start()

    def _renew_forever(self) -> None:
        while True:
            time.sleep(self._lease_ms / 3000)  # renew a lease twice or more before it ends
            try:
                self.renew()
            except redis.RedisError as exc:
                log.warning("could not renew long-request slots (%s)", type(exc).__name__)

    def renew(self) -> None:
        """Push back the lease end of every slot this process holds."""
        with self._lock:
            held = list(self._held)
        if not held:
            return
        until = _now_ms() + self._lease_ms
        with self._client.pipeline(transaction=False) as pipe:
            for slot in held:
                for key in self._sets(slot.key_id):
                    pipe.zadd(key, {slot.member: until}, xx=True)
                    pipe.pexpire(key, self._lease_ms)
            pipe.execute()


def _now_ms() -> int:
    return int(time.time() * 1000)
