"""What the API uses to hand operations to the workers: enqueue and revoke."""

from __future__ import annotations

from typing import Any

from core.config import Settings
from core.jobs import JobSpec
from core.operation import Operation
from workers.celery_app import OpqueueCelery


class Dispatcher:
    """Publishes job tasks to the broker and revokes them."""

    def __init__(self, celery: OpqueueCelery) -> None:
        self.celery = celery

    @classmethod
    def from_settings(cls, settings: Settings) -> Dispatcher:
        """A dispatcher with its own producer-only Celery app."""
        return cls(OpqueueCelery(settings))

    def enqueue(self, operation: Operation, spec: JobSpec, job_input: dict[str, Any],
                timeout: float) -> None:
        """Queue the job; the task id is the operation id."""
        self.celery.send_task(
            spec.name, kwargs={"project": operation.project, "input": job_input},
            task_id=operation.id, soft_time_limit=timeout,
            time_limit=timeout + self.celery.settings.cancel_grace_seconds)

    def revoke(self, operation_id: str) -> None:
        """Tell every worker to skip this task if its message is still to come."""
        self.celery.control.revoke(operation_id)

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
