"""The context a running job receives: progress reporting and cancellation checks.

Progress reports are coalesced: the first is written at once, later ones at most every
FLUSH_INTERVAL seconds (the latest wins; a timer writes one the job leaves behind), so a
job may report in a tight loop at tens of thousands of calls a second while readers see
its metadata at most FLUSH_INTERVAL (plus one write) stale. Every write also tells whether
cancellation was asked for, and between writes `progress` looks at the state at most every
CHECK_INTERVAL, so a cooperative job stops as promptly as before. `close` writes what is
left before the job's outcome is recorded.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from core import record
from core.connection import UNREACHABLE
from core.errors import Cancelled, InvalidArgument
from core.names import operation_name
from core.states import Event, State
from core.store import OperationStore

log = logging.getLogger(__name__)

CANCEL_REQUESTED = frozenset({State.CANCELLING, State.CANCELLED})
FLUSH_INTERVAL = 0.5  # seconds between progress writes, at most
CHECK_INTERVAL = 0.1  # seconds between cancellation reads while writes are held back


class OperationContext:
    """Passed as the first argument to every job function."""

    def __init__(self, store: OperationStore, project: str, operation_id: str,
                 attempt: int) -> None:
        self._store = store
        self._project = project
        self._operation_id = operation_id
        self._attempt = attempt
        self._lock = threading.Lock()  # one write at a time, in report order
        self._pending: dict[str, Any] | None = None  # the latest report not yet written
        self._next_flush = 0.0  # time.monotonic() from when a report is written at once
        self._next_check = 0.0
        self._timer: threading.Timer | None = None
        self._cancel_requested = False

    @property
    def operation_name(self) -> str:
        """The name of the operation this job runs for."""
        return operation_name(self._project, self._operation_id)

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, and so on."""
        return self._attempt

    @property
    def cancelled(self) -> bool:
        """True once a caller has asked to cancel this operation."""
        return self._look_for_cancel()

    def _look_for_cancel(self) -> bool:
        """Read whether a cancel was asked for; while the store cannot be reached, what was
        last seen (an outage is not the job's failure)."""
        try:
            self._cancel_requested |= self._store.state(
                self._project, self._operation_id) in CANCEL_REQUESTED
        except UNREACHABLE as exc:
            log.warning("could not reach the store to check %s for a cancel (%s); the job "
                        "goes on", self.operation_name, type(exc).__name__)
        return self._cancel_requested

    def check_cancelled(self) -> None:
        """Raise `Cancelled` if a caller has asked to cancel this operation."""
        if self.cancelled:
            raise Cancelled("the operation was cancelled at the caller's request")

    def progress(self, percent: float, message: str = "", **details: Any) -> None:
        """Report progress; raises `Cancelled` if a caller has asked to cancel."""
        if not math.isfinite(percent):
            raise InvalidArgument(f"progress percent must be a finite number, not {percent}")
        fields: dict[str, Any] = {
            record.PROGRESS_PERCENT: min(100, max(0, int(percent))),
            record.STATUS_MESSAGE: message,
        }
        if details:
            fields[record.DETAILS] = record.encode_json(details)
        now = time.monotonic()
        with self._lock:
            self._pending = fields
            due = now >= self._next_flush
            if not due and self._timer is None:
                self._timer = threading.Timer(self._next_flush - now, self._flush_later)
                self._timer.daemon = True
                self._timer.start()
        try:
            if due:
                self.flush()
            elif not self._cancel_requested and now >= self._next_check:
                self._next_check = now + CHECK_INTERVAL
                self._look_for_cancel()
        except UNREACHABLE as exc:  # a store outage is not the job's failure: go on
            log.warning("could not reach the store to report progress of %s (%s); the job "
                        "goes on", self.operation_name, type(exc).__name__)
        if self._cancel_requested:
            raise Cancelled("the operation was cancelled at the caller's request")

    def flush(self) -> None:
        """Write the latest progress report not written yet, if any."""
        with self._lock:
            fields, self._pending = self._pending, None
            if fields is None:
                return
            self._next_flush = time.monotonic() + FLUSH_INTERVAL
            try:
                moved = self._store.apply(self._project, self._operation_id, Event.PROGRESS,
                                          fields)
            except UNREACHABLE:
                self._pending = fields  # the next flush writes it, unless a newer one comes
                raise
            if moved.before in CANCEL_REQUESTED:
                self._cancel_requested = True

    def close(self) -> None:
        """The job has ended: write its last report before its outcome is recorded."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        try:
            self.flush()
        except Exception:  # the outcome still gets written (or fails) on its own
            log.warning("could not write the last progress of %s", self.operation_name,
                        exc_info=True)

    def _flush_later(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self.flush()
        except Exception:  # the job's next report (or its end) tries again
            log.warning("could not write progress of %s", self.operation_name, exc_info=True)
