"""The task base class: Celery's lifecycle hooks become operation store transitions.

Every job task uses it (it is the app-wide `task_cls`), so no job can forget a transition.
The hooks run in the pool process, except `on_failure` for a hard time limit, which Celery
calls in the worker's main process; both reach the same store.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery import Task
from celery.exceptions import Ignore, Reject

from core import logs, record
from core.errors import (
    Aborted,
    Cancelled,
    DeadlineExceeded,
    OperationError,
    Unknown,
    reason_for,
)
from core.jobs import JobSpec
from core.names import operation_name
from core.states import LEASED, Event
from core.timestamps import now_micros

if TYPE_CHECKING:
    from workers.celery_app import OpqueueCelery

log = logging.getLogger(__name__)


def failure_status(exc: BaseException, job: str) -> dict[str, Any]:
    """The `google.rpc.Status` recorded for a job that raised `exc`; never a traceback."""
    if isinstance(exc, OperationError):
        return exc.status()
    if isinstance(exc, SoftTimeLimitExceeded | TimeLimitExceeded):
        return DeadlineExceeded(f"job {job} ran past its time limit",
                                reason="TIME_LIMIT_EXCEEDED").status()
    name = type(exc).__name__
    return Unknown(f"job {job} failed with {name}", reason=reason_for(exc),
                   metadata={"exception": name}).status()


class OperationTask(Task):  # type: ignore[misc]
    """Base of every job task. Task id = operation id; kwargs carry `project` and `input`."""

    app: OpqueueCelery
    spec: JobSpec
    Request = "workers.request:OperationRequest"

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Take the operation (PENDING → RUNNING, with a lease), or skip this delivery.

        Skipped: an operation cancelled, deleted or finished meanwhile. Deferred: a delivery
        of one whose lease another worker holds (a duplicate, or a redelivery that came
        before the lease of a lost worker ran out). A redelivery after a lost worker runs
        again unless the job is not safe to repeat or its redeliveries are spent.
        """
        project = kwargs["project"]
        name = operation_name(project, task_id)
        self.request.log_scope = logs.bind(name, self.name)  # until after_return
        settings = self.app.settings
        moved = self.app.store.apply(
            project, task_id, Event.START,
            {record.START_TIME: now_micros(), record.WORKER: self.request.hostname or ""},
            increment=(record.ATTEMPT,), take_lease=settings.lease_seconds)
        if not moved.applied:
            if moved.before in LEASED:
                self._defer(name)
            else:
                log.info("skipping %s: it is %s", name,
                         moved.before.value if moved.before else "deleted")
            raise Ignore()
        redeliveries = moved.attempt - (self.request.retries + 1)
        if redeliveries > 0 and (not self.spec.safe_to_repeat
                                 or redeliveries > settings.max_redeliveries):
            error = Aborted(f"the worker running job {self.name} was lost and the job is not "
                            "run again", reason="WORKER_LOST")
            # This delivery does not run, so it does not count as an attempt.
            self.app.store.apply(project, task_id, Event.FAIL, {
                record.ERROR: record.encode_json(error.status()),
                record.STATUS_MESSAGE: f"aborted: {error.message}",
                record.ATTEMPT: moved.attempt - 1})
            log.warning("aborted %s: its worker was lost %d time(s)", name, redeliveries)
            raise Ignore()
        log.info("started %s (%s), attempt %d", name, self.name, moved.attempt)

    def _defer(self, name: str) -> None:
        """Queue this delivery again for when the lease now held runs out, so that it is
        never dropped: then it runs if the holder was lost, and is skipped if it finished.
        The copy is published (and confirmed, on RabbitMQ) before this one is acknowledged;
        if it cannot be, this one goes back to the broker instead."""
        delay = max(1, math.ceil(self.app.settings.lease_seconds))
        try:
            self.signature_from_request(self.request, queue=self.app.settings.queue,
                                        countdown=delay).apply_async()
        except Exception as exc:  # whatever the broker's client raises
            log.warning("could not defer %s (%s); it goes back to the broker", name,
                        type(exc).__name__)
            raise Reject(requeue=True) from exc
        log.info("deferring %s for %ds: it is held by a live worker", name, delay)

    def on_success(self, retval: Any, task_id: str, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> None:
        """RUNNING → SUCCEEDED with the job's return value (already JSON) as the response."""
        self.app.store.apply(kwargs["project"], task_id, Event.SUCCEED,
                             {record.RESPONSE: retval, record.PROGRESS_PERCENT: 100})
        log.info("succeeded %s", operation_name(kwargs["project"], task_id))

    def on_failure(self, exc: BaseException, task_id: str, args: tuple[Any, ...],
                   kwargs: dict[str, Any], einfo: Any) -> None:
        """→ CANCELLED for a honoured cancel, else → FAILED with the error's Status."""
        name = operation_name(kwargs["project"], task_id)
        if isinstance(exc, Cancelled):
            self.app.store.apply(kwargs["project"], task_id, Event.CONFIRM_CANCEL,
                                 {record.STATUS_MESSAGE: "cancelled: the job stopped as asked"})
            log.info("cancelled %s", name)
            return
        status = failure_status(exc, self.name)
        self.app.store.apply(kwargs["project"], task_id, Event.FAIL,
                             {record.ERROR: record.encode_json(status)})
        if isinstance(exc, OperationError | SoftTimeLimitExceeded | TimeLimitExceeded):
            log.info("failed %s: %s", name, status["message"])
        else:
            log.error("failed %s with an unexpected error", name, exc_info=exc)

    def after_return(self, *args: Any, **kwargs: Any) -> None:
        """The job's log lines are over."""
        token = getattr(self.request, "log_scope", None)
        if token is not None:
            logs.unbind(token)

    def on_retry(self, exc: BaseException, task_id: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any], einfo: Any) -> None:
        """RUNNING → PENDING, saying which attempt failed and why."""
        message = f"attempt {self.request.retries + 1} failed ({type(exc).__name__}); retrying"
        self.app.store.apply(kwargs["project"], task_id, Event.RETRY,
                             {record.STATUS_MESSAGE: message})
        log.info("retrying %s: %s", operation_name(kwargs["project"], task_id), message)
