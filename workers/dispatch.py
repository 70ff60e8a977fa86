"""What the API uses to hand operations to the workers: enqueue and revoke.

Messages are Celery task messages (protocol 2) that the API builds itself and publishes
with a kombu producer, skipping `send_task`'s generic machinery (routing, signals,
argument reprs), which cost about six times the publish itself. Many messages go out
through one producer in one kombu publish batch: on the Redis transport, one pipeline.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from kombu.transport import redis as kombu_redis

from core.config import Settings
from core.jobs import JobSpec
from core.operation import Operation
from workers.celery_app import OpqueueCelery

# Celery's own empty "embed" part of a protocol 2 body: no callbacks, chain or chord.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class _PublishingChannel(kombu_redis.Channel):
    """kombu's Redis channel, keeping one client for its publishes.

    kombu builds a new redis-py client (and its table of ~170 response callbacks) for every
    publish; that was a third of the cost of queueing one job. The client is thread-safe
    and draws connections from the channel's own pool, as before.
    """

    @cached_property
    def _publish_client(self) -> Any:
        return super()._create_client(asynchronous=False)  # type: ignore[no-untyped-call]

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous)  # type: ignore[no-untyped-call]
        return self._publish_client


class PublishingTransport(kombu_redis.Transport):
    """The Redis transport with `_PublishingChannel`: what the API publishes through."""

    Channel = _PublishingChannel


@dataclass(frozen=True)
class Submission:
    """One job to queue: its operation, job type, validated input and time limit (seconds)."""

    operation: Operation
    spec: JobSpec
    input: dict[str, Any]
    timeout: float


class Dispatcher:
    """Publishes job tasks to the broker and revokes them."""

    def __init__(self, celery: OpqueueCelery) -> None:
        self.celery = celery
        self._origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self._declared = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Dispatcher:
        """A dispatcher with its own producer-only Celery app."""
        celery = OpqueueCelery(settings)
        if urlsplit(settings.effective_broker_url).scheme in ("redis", "rediss"):
            celery.conf.broker_transport = f"{__name__}:PublishingTransport"
        return cls(celery)

    def enqueue(self, operation: Operation, spec: JobSpec, job_input: dict[str, Any],
                timeout: float) -> None:
        """Queue the job; the task id is the operation id."""
        self.enqueue_many([Submission(operation, spec, job_input, timeout)])

    def enqueue_many(self, submissions: Sequence[Submission]) -> None:
        """Queue every job, in order, over one broker connection and one publish batch."""
        if not submissions:
            return
        queue = self.celery.amqp.default_queue
        options = {"exchange": "", "routing_key": queue.name, "serializer": "json",
                   "delivery_mode": 2, "retry": False, "reply_to": self.celery.thread_oid}
        if not self._declared:  # as Celery does on its first publish; once is enough
            options["declare"] = [queue]
        with self.celery.producer_or_acquire() as producer, \
                producer.batch(max_size=len(submissions)):
            for submission in submissions:
                self._publish(producer, submission, options)
        self._declared = True

    def _publish(self, producer: Any, submission: Submission, options: dict[str, Any]) -> None:
        task_id = submission.operation.id
        project = submission.operation.project
        grace = self.celery.settings.cancel_grace_seconds
        # The headers `celery.app.amqp.AMQP.as_task_v2` writes, for a task with no parent.
        headers: dict[str, Any] = {
            "lang": "py", "task": submission.spec.name, "id": task_id, "shadow": None,
            "eta": None, "expires": None, "group": None, "group_index": None, "retries": 0,
            "timelimit": [submission.timeout + grace, submission.timeout],
            "root_id": task_id, "parent_id": None, "argsrepr": "()",
            # Job inputs stay out of worker logs and events: only the project is shown.
            "kwargsrepr": f"{{'project': {project!r}, 'input': ...}}",
            "origin": self._origin, "ignore_result": None, "replaced_task_nesting": 0,
            "stamped_headers": None, "stamps": {},
        }
        body = ((), {"project": project, "input": submission.input}, _EMBED)
        producer.publish(body, headers=headers, correlation_id=task_id, **options)

    def revoke(self, operation_id: str) -> None:
        """Tell every worker to skip this task if its message is still to come."""
        self.celery.control.revoke(operation_id)

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
