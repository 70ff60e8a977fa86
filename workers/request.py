"""The worker-side request of a job task: what the worker's main process does when the
pool process running a job dies."""

from __future__ import annotations

import logging
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery.worker.request import Request

from core import record
from core.names import operation_name
from core.states import Event

log = logging.getLogger(__name__)


class OperationRequest(Request):  # type: ignore[misc]
    """Releases the operation of a pool process that died, before Celery requeues it."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> Any:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):  # how the pool hands it over
            exc = exc.exc
        if isinstance(exc, WorkerLostError):
            project = self.kwargs["project"]
            self.task.app.store.apply(project, self.id, Event.WORKER_LOST, {
                record.STATUS_MESSAGE: f"worker process lost on {self.hostname}; redelivering"})
            log.warning("pool process running %s died; it is redelivered",
                        operation_name(project, self.id))
        return super().on_failure(exc_info, send_failed_event=send_failed_event,
                                  return_ok=return_ok)
