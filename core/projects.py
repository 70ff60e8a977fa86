"""The registry of projects: how readers find the per-project structures of the key layout
(core/keyspace.py) that sweepers, relays and metrics go through across projects.

A project enters the registry the first time a process creates an operation in it, and
again every few minutes (a registry entry lost in a failover comes back by itself), so
the registry costs no round trip per submission. Entries are never removed: a project
that once had operations is kept, and costs its readers one command per sweep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import cast

import redis
from redis.commands.core import Script

from core.keyspace import Keys

REREGISTER_SECONDS = 300.0


class Projects:
    """Registers projects and finds those whose per-project structure has due entries."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._registered: dict[str, float] = {}  # project → when this process last added it
        self._lock = threading.Lock()

    def register(self, project: str) -> None:
        """Make sure `project` is in the registry (one SADD per process every few minutes)."""
        now = time.monotonic()
        with self._lock:
            if now - self._registered.get(project, -REREGISTER_SECONDS) < REREGISTER_SECONDS:
                return
        self.redis.sadd(self.keys.projects(), project)
        with self._lock:
            self._registered[project] = now

    def all(self) -> list[str]:
        """Every registered project."""
        return sorted(cast(set[str], self.redis.smembers(self.keys.projects())))

    def due(self, key_of: Callable[[str], str], until: float) -> list[str]:
        """The projects whose sorted set `key_of(project)` holds a member scored `until` or
        less (one pipelined round trip, each command on its project's shard)."""
        projects = self.all()
        if not projects:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for project in projects:
                pipe.zrangebyscore(key_of(project), "-inf", until, start=0, num=1)
            found = cast(list[list[str]], pipe.execute())
        return [project for project, members in zip(projects, found, strict=True) if members]

    def claim_due(self, claim: Script, key_of: Callable[[str], str], now_ms: int, *,
                  limit: int, lease_ms: int) -> list[str]:
        """Up to `limit` members due now of the sorted sets `key_of(project)` of every
        project (outboxes), each claimed for `lease_ms` by `claim` (claim.lua), one project's
        set at a time."""
        members: list[str] = []
        for project in self.due(key_of, now_ms):
            members += cast(list[str], claim(keys=[key_of(project)],
                                             args=[now_ms, limit - len(members), lease_ms]))
            if len(members) >= limit:
                break
        return members
