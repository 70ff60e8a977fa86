"""Test doubles and builders shared by the unit tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from core.names import operation_name
from workers.transport import TaskMessage

QUEUE_KEY = "fake-broker:queue"


@dataclass
class RecordingDispatcher:
    """Stands in for the broker in HTTP unit tests: records what would have been queued.

    Like the real one, it either publishes after the store has created the operations
    (`queued` lists what it published) or, with `redis`, shares the store's Redis: it only
    builds the messages, the store queues them on `QUEUE_KEY`, and `queued` reads them back.
    """

    redis: Any = None
    published: list[tuple[str, str, dict[str, Any], float]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    broken: bool = False

    @property
    def shares_store(self) -> bool:
        return self.redis is not None

    @property
    def queued(self) -> list[tuple[str, str, dict[str, Any], float]]:
        if not self.shares_store:
            return self.published
        return [tuple(json.loads(payload))  # type: ignore[misc]
                for payload in reversed(self.redis.lrange(QUEUE_KEY, 0, -1))]

    def messages(self, submissions: list[Any]) -> list[TaskMessage]:
        self._check()
        return [TaskMessage(QUEUE_KEY, json.dumps(self._describe(submission)))
                for submission in submissions]

    def enqueue_many(self, submissions: list[Any]) -> None:
        self._check()
        self.published += [self._describe(submission) for submission in submissions]

    def revoke(self, operation_id: str) -> None:
        self.revoked.append(operation_id)

    def ping(self) -> None:
        self._check()

    def _check(self) -> None:
        if self.broken:
            raise redis.ConnectionError("broker down")

    @staticmethod
    def _describe(submission: Any) -> tuple[str, str, dict[str, Any], float]:
        return (operation_name(submission.project, submission.operation_id),
                submission.job, submission.input, submission.timeout)
