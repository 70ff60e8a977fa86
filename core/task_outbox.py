"""The task outbox: jobs' task messages stored with their operations until a broker has
confirmed them.

With a broker other than the store's Redis, the script that creates an operation also
records what its task message carries (a `Submission`) in one sorted set, scored by when a
relay may publish it. The API publishes at once and removes the entry after the broker's
confirm; an entry left behind (the API died in between, or the broker refused) is published
by a relay (workers/relay.py) once due. A relay claims an entry by pushing its score a while
into the future, so several relays never publish one entry at the same moment; a copy
published twice is harmless: the operation's lease refuses a second run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis

from core.config import Settings
from core.connection import register_lua
from core.keyspace import Keys
from core.projects import Projects
from core.store import OperationStore, Push


@dataclass(frozen=True)
class Submission:
    """One job to queue: its operation's project and id (the task id), job type, validated
    input and time limit (seconds)."""

    project: str
    operation_id: str
    job: str
    input: dict[str, Any]
    timeout: float


@dataclass(frozen=True)
class Entry:
    """One submission in the outbox: its member there and when it was stored (epoch ms)."""

    member: str
    submission: Submission
    stored_ms: int


class TaskOutbox:
    """Puts submissions in the outbox (through the creating script), claims and removes
    them."""

    def __init__(self, client: redis.Redis, keys: Keys, relay_after_ms: int) -> None:
        self.redis = client
        self.keys = keys
        self.relay_after_ms = relay_after_ms  # also how long a claim holds an entry
        self._claim = register_lua(client, "core", "claim.lua")
        self._projects = Projects(client, keys)

    @classmethod
    def of(cls, store: OperationStore, settings: Settings) -> TaskOutbox:
        """The task outbox of `store`'s deployment."""
        return cls(store.redis, store.keys, int(settings.outbox_relay_after_seconds * 1000))

    def entry(self, submission: Submission, now_ms: int) -> tuple[Entry, Push]:
        """The entry of `submission` and the message that stores it with its operation."""
        member = json.dumps({"at": now_ms, **asdict(submission)}, separators=(",", ":"))
        return (Entry(member, submission, now_ms),
                Push(self.keys.task_outbox(submission.project), member,
                     score=now_ms + self.relay_after_ms))

    def claim(self, now_ms: int, limit: int) -> list[Entry]:
        """Entries due now (of every project's outbox); other relays do not get them for
        `relay_after_ms`."""
        members = self._projects.claim_due(self._claim, self.keys.task_outbox, now_ms,
                                           limit=limit, lease_ms=self.relay_after_ms)
        return [_parse(member) for member in members]

    def remove(self, entries: list[Entry]) -> None:
        """The broker confirmed these entries' messages."""
        by_project: dict[str, list[str]] = {}
        for entry in entries:
            by_project.setdefault(entry.submission.project, []).append(entry.member)
        for project, members in by_project.items():
            self.redis.zrem(self.keys.task_outbox(project), *members)


def _parse(member: str) -> Entry:
    fields = json.loads(member)
    stored_ms = int(fields.pop("at"))
    return Entry(member, Submission(**fields), stored_ms)
