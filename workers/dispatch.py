"""What the API uses to hand operations to the workers: enqueue and revoke.

Messages are Celery task messages (protocol 2) that the API builds itself with a kombu
producer, skipping `send_task`'s generic machinery (routing, signals, argument reprs),
which cost about six times the publish itself. When the broker is the store's own Redis,
the messages are only built here (`messages`), and the store queues each one in the same
script that creates its operation: no operation without its message, nor the reverse.
Otherwise (`enqueue_many`) many go out through one producer in one kombu publish batch.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from typing import Any, cast

from core.config import Settings
from core.task_outbox import Submission
from workers.celery_app import OpqueueCelery
from workers.transport import TaskMessage, transport_for

log = logging.getLogger(__name__)

# Celery's own empty "embed" part of a protocol 2 body: no callbacks, chain or chord.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class Dispatcher:
    """Publishes job tasks to the broker (or builds them for the store to queue) and revokes
    them."""

    def __init__(self, celery: OpqueueCelery, *, shares_store: bool = False) -> None:
        self.celery = celery
        self.shares_store = shares_store  # True: `messages`, for the store to queue
        self._origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self._declared = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Dispatcher:
        """A dispatcher with its own producer-only Celery app."""
        celery = OpqueueCelery(settings)
        transport = transport_for(settings, "Publishing")
        if transport:
            celery.conf.broker_transport = transport
        return cls(celery, shares_store=settings.broker_shares_store)

    def messages(self, submissions: Sequence[Submission]) -> list[TaskMessage]:
        """The task messages of these jobs, in order, as the Redis broker would queue them;
        nothing is sent (needs a Redis broker)."""
        with self.celery.producer_or_acquire() as producer, \
                producer.channel.capturing() as captured:
            options = self._options()
            for submission in submissions:
                self._publish(producer, submission, options)
        self._declared = True
        return cast(list[TaskMessage], captured)

    def enqueue_many(self, submissions: Sequence[Submission]) -> None:
        """Queue every job, in order, over one broker connection and one publish batch
        (whose confirms, on RabbitMQ, are awaited once: workers/confirms.py)."""
        if not submissions:
            return
        try:
            self._publish_batch(submissions)
        except Exception as exc:  # whatever the broker's client raises
            # Mostly a connection the broker dropped since the last publish, which kombu's
            # own retry cannot replace inside a batch: once more, on a fresh connection (the
            # pool replaced the failed one). A message sent twice is harmless (the lease).
            log.info("publishing %d task message(s) failed (%s); trying once more",
                     len(submissions), type(exc).__name__)
            self._publish_batch(submissions)

    def _publish_batch(self, submissions: Sequence[Submission]) -> None:
        with self.celery.producer_or_acquire() as producer, \
                producer.batch(max_size=len(submissions)):
            options = self._options()
            for submission in submissions:
                self._publish(producer, submission, options)
        self._declared = True

    def _options(self) -> dict[str, Any]:
        queue = self.celery.amqp.default_queue
        options = {"exchange": "", "routing_key": queue.name, "serializer": "json",
                   "delivery_mode": 2, "reply_to": self.celery.thread_oid,
                   # A connection the broker dropped since the last publish is opened again
                   # once, at once; a broker that is down is reported without waiting.
                   "retry": True, "retry_policy": {"max_retries": 1, "interval_start": 0}}
        if not self._declared:  # as Celery does on its first publish; once is enough
            options["declare"] = [queue]
        return options

    def _publish(self, producer: Any, submission: Submission, options: dict[str, Any]) -> None:
        task_id = submission.operation_id
        project = submission.project
        grace = self.celery.settings.cancel_grace_seconds
        # The headers `celery.app.amqp.AMQP.as_task_v2` writes, for a task with no parent.
        headers: dict[str, Any] = {
            "lang": "py", "task": submission.job, "id": task_id, "shadow": None,
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
