"""The webhook outbox and delivery log in Redis (the outbox itself is filled atomically by
the transition script)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

import redis

from core.connection import register_lua
from core.keyspace import Keys
from core.projects import Projects

CLAIM_LEASE_MS = 60_000  # longer than a delivery attempt can take
LOG_LENGTH = 50  # attempts kept per operation


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery to make: which operation, which event, which attempt."""

    project: str
    id: str
    event: str
    delivery: str  # the idempotency id receivers see; the same on every attempt
    attempt: int = 1

    def member(self) -> str:
        """Its outbox member (the transition script writes the first one)."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)


class Outbox:
    """Claims, reschedules and records webhook deliveries."""

    def __init__(self, client: redis.Redis, keys: Keys, retention_seconds: int) -> None:
        self.redis = client
        self.keys = keys
        self.retention_seconds = retention_seconds
        self._claim = register_lua(client, "core", "claim.lua")
        self._projects = Projects(client, keys)

    def claim(self, now_ms: int, limit: int) -> list[tuple[str, Delivery]]:
        """Deliveries due now (of every project's outbox), each with its outbox member;
        others will not get them for a while."""
        members = self._projects.claim_due(self._claim, self.keys.outbox, now_ms,
                                           limit=limit, lease_ms=CLAIM_LEASE_MS)
        return [(member, Delivery(**json.loads(member))) for member in members]

    def done(self, member: str) -> None:
        """The delivery succeeded, or will not be tried again."""
        self.redis.zrem(self.keys.outbox(json.loads(member)["project"]), member)

    def retry(self, member: str, delivery: Delivery, due_ms: int) -> None:
        """Try again at `due_ms`, as the next attempt."""
        key = self.keys.outbox(delivery.project)
        with self.redis.pipeline() as pipe:
            pipe.zrem(key, member)
            pipe.zadd(key,
                      {replace(delivery, attempt=delivery.attempt + 1).member(): due_ms})
            pipe.execute()

    def log(self, delivery: Delivery, outcome: dict[str, Any]) -> None:
        """Record one attempt's outcome in the operation's delivery log."""
        key = self.keys.deliveries(delivery.project, delivery.id)
        entry = {"delivery": delivery.delivery, "event": delivery.event,
                 "attempt": delivery.attempt, **outcome}
        with self.redis.pipeline() as pipe:
            pipe.rpush(key, json.dumps(entry, separators=(",", ":")))
            pipe.ltrim(key, -LOG_LENGTH, -1)
            pipe.expire(key, self.retention_seconds)
            pipe.execute()

    def history(self, project: str, operation_id: str) -> list[dict[str, Any]]:
        """The operation's delivery attempts, oldest first."""
        raw = cast(list[str], self.redis.lrange(self.keys.deliveries(project, operation_id),
                                                0, -1))
        return [json.loads(entry) for entry in raw]

