"""Test doubles and builders shared by the unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.jobs import JobSpec
from core.operation import Operation


@dataclass
class RecordingDispatcher:
    """Stands in for the broker in HTTP unit tests: records what would have been queued."""

    queued: list[tuple[str, str, dict[str, Any], float]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    broken: bool = False

    def enqueue(self, operation: Operation, spec: JobSpec, job_input: dict[str, Any],
                timeout: float) -> None:
        if self.broken:
            raise ConnectionError("broker down")
        self.queued.append((operation.name, spec.name, job_input, timeout))

    def enqueue_many(self, submissions: list[Any]) -> None:
        for submission in submissions:
            self.enqueue(submission.operation, submission.spec, submission.input,
                         submission.timeout)

    def revoke(self, operation_id: str) -> None:
        self.revoked.append(operation_id)

    def ping(self) -> None:
        if self.broken:
            raise ConnectionError("broker down")
