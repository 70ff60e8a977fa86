"""The task base class: Celery's lifecycle hooks become operation store transitions.

Every job task uses it (it is the app-wide `task_cls`), so no job can forget a transition.
The hooks run in the pool process, except `on_failure` for a hard time limit, which Celery
calls in the worker's main process; both reach the same store.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery import Task
from celery.exceptions import Ignore

from core import record
from core.errors import Cancelled, DeadlineExceeded, OperationError, Unknown, reason_for
from core.names import now_micros, operation_name
from core.states import Event

if TYPE_CHECKING:
    from workers.celery_app import OpqueueCelery

log = logging.getLogger(__name__)

REAP_INTERVAL_SECONDS = 10.0


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
    _last_reap = 0.0

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Move PENDING → RUNNING, or skip a job that was cancelled or deleted meanwhile."""
        project = kwargs["project"]
        moved = self.app.store.apply(
            project, task_id, Event.START,
            {record.START_TIME: now_micros(), record.WORKER: self.request.hostname or ""},
            incr_attempt=True)
        if not moved.applied:
            log.info("skipping %s: it is %s", operation_name(project, task_id),
                     moved.before.value if moved.before else "deleted")
            raise Ignore()
        log.info("started %s (%s)", operation_name(project, task_id), self.name)

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

    def on_retry(self, exc: BaseException, task_id: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any], einfo: Any) -> None:
        """RUNNING → PENDING, saying which attempt failed and why."""
        message = f"attempt {self.request.retries + 1} failed ({type(exc).__name__}); retrying"
        self.app.store.apply(kwargs["project"], task_id, Event.RETRY,
                             {record.STATUS_MESSAGE: message})
        log.info("retrying %s: %s", operation_name(kwargs["project"], task_id), message)

    def after_return(self, *args: Any, **kwargs: Any) -> None:
        """Now and then, drop expired operations from the listing indexes."""
        now = time.monotonic()
        if now - OperationTask._last_reap >= REAP_INTERVAL_SECONDS:
            OperationTask._last_reap = now
            self.app.store.reap_expired()
