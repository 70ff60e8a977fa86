"""A worker bootstep that watches the jobs its own pool is running.

It runs in the worker's main process, on Celery's timer. A job whose cancellation was
asked for more than the grace period ago, and that has not stopped by itself, is marked
CANCELLED and its pool process is killed (what Celery's `revoke(terminate=True)` does);
the pool starts a fresh process and the worker goes on taking jobs.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import redis
from celery import bootsteps
from celery.worker import state as worker_state

from core import record
from core.names import now_micros, operation_name
from core.states import Event, State

log = logging.getLogger(__name__)

STOPPING = frozenset({State.CANCELLING, State.CANCELLED})


class Supervisor(bootsteps.StartStopStep):  # type: ignore[misc]
    """Terminates running jobs that outlive their cancellation grace period."""

    requires = frozenset({"celery.worker.components:Timer", "celery.worker.components:Pool"})

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._timer_entry: Any = None

    def start(self, worker: Any) -> None:
        interval = worker.app.settings.supervise_interval_seconds
        self._timer_entry = worker.timer.call_repeatedly(interval, self.check, (worker,))

    def stop(self, worker: Any) -> None:
        if self._timer_entry is not None:
            self._timer_entry.cancel()

    def check(self, worker: Any) -> None:
        """One look at every job this worker is running."""
        running = [r for r in list(worker_state.active_requests) if "project" in r.kwargs]
        if not running:
            return
        store = worker.app.store
        grace = int(worker.app.settings.cancel_grace_seconds * 1_000_000)
        try:
            found = store.cancellations([(r.kwargs["project"], r.id) for r in running])
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("supervisor cannot reach Redis (%s); will retry", type(exc).__name__)
            return
        now = now_micros()
        for request, (state, asked_at) in zip(running, found, strict=True):
            if state in STOPPING and asked_at is not None and now - asked_at >= grace:
                self._terminate(worker, request)

    def _terminate(self, worker: Any, request: Any) -> None:
        project = request.kwargs["project"]
        grace = worker.app.settings.cancel_grace_seconds
        message = f"cancelled: terminated after ignoring the request for {grace:g}s"
        worker.app.store.apply(project, request.id, Event.CONFIRM_CANCEL,
                               {record.STATUS_MESSAGE: message})
        worker_state.revoked.add(request.id)  # a redelivered copy is skipped too
        request.terminate(worker.pool, signal=signal.SIGKILL)
        log.info("terminated %s: it ignored its cancellation for the grace period",
                 operation_name(project, request.id))
