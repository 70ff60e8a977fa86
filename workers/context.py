"""The context a running job receives: progress reporting and cancellation checks."""

from __future__ import annotations

import math
from typing import Any

from core import record
from core.errors import Cancelled, InvalidArgument
from core.names import operation_name
from core.states import Event, State
from core.store import OperationStore

CANCEL_REQUESTED = frozenset({State.CANCELLING, State.CANCELLED})


class OperationContext:
    """Passed as the first argument to every job function."""

    def __init__(self, store: OperationStore, project: str, operation_id: str,
                 attempt: int) -> None:
        self._store = store
        self._project = project
        self._operation_id = operation_id
        self._attempt = attempt

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
        return self._store.state(self._project, self._operation_id) in CANCEL_REQUESTED

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
        moved = self._store.apply(self._project, self._operation_id, Event.PROGRESS, fields)
        if moved.before in CANCEL_REQUESTED:
            raise Cancelled("the operation was cancelled at the caller's request")
