"""The worker-side request of a job task: what the worker's main process does when the
pool process running a job dies."""

from __future__ import annotations

import logging
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery.worker import state as worker_state
from celery.worker.request import Request

from core import record
from core.names import operation_name
from core.states import Event

log = logging.getLogger(__name__)


class OperationRequest(Request):  # type: ignore[misc]
    """Releases the operation of a pool process that died, before Celery requeues it.

    A pool process that dies while its worker is stopping (a warm shutdown: the signal that
    stops the worker reaches its pool processes too) hands its job back: queued again,
    without counting as a lost worker. Any other death counts toward the job's redeliveries.
    """

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> Any:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):  # how the pool hands it over
            exc = exc.exc
        if isinstance(exc, WorkerLostError):
            project = self.kwargs["project"]
            name = operation_name(project, self.id)
            if _stopping():
                self.task.app.store.apply(project, self.id, Event.HAND_BACK, {
                    record.STATUS_MESSAGE: f"handed back by worker {self.hostname} as it "
                                           "stopped; queued again"},
                    decrement=(record.ATTEMPT,))
                log.info("handed back %s: this worker is stopping", name)
                worker_state.task_ready(self)
                return self.reject(requeue=True)
            self.task.app.store.apply(project, self.id, Event.WORKER_LOST, {
                record.STATUS_MESSAGE: f"the worker process running it on {self.hostname} "
                                       "was lost; queued again"})
            log.warning("pool process running %s died; it is redelivered", name)
        return super().on_failure(exc_info, send_failed_event=send_failed_event,
                                  return_ok=return_ok)


def _stopping() -> bool:
    """True once this worker has begun a warm or cold shutdown."""
    # As celery.worker.state.maybe_shutdown tests them: 0 (EX_OK) is a request to stop.
    return any(flag is not None and flag is not False
               for flag in (worker_state.should_stop, worker_state.should_terminate))
