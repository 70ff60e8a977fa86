"""The Operation resource as plain data, independent of Redis and of the wire."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.codes import Code
from core.errors import Cancelled
from core.names import operation_name
from core.states import TERMINAL, State


@dataclass(frozen=True)
class Operation:
    """One operation as the store knows it. Times are microseconds since the epoch."""

    project: str
    id: str
    job: str
    state: State
    create_time: int
    update_time: int
    start_time: int | None = None
    end_time: int | None = None
    progress_percent: int = 0
    status_message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    worker: str = ""
    requested_cancellation: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    request_id: str = ""
    notify_url: str = ""  # where webhooks go (not part of the wire Operation)
    response: Any = None
    error: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """The resource name, `projects/{project}/operations/{id}`."""
        return operation_name(self.project, self.id)

    @property
    def done(self) -> bool:
        """True once the operation is in a terminal state."""
        return self.state in TERMINAL

    @property
    def status(self) -> dict[str, Any] | None:
        """The `google.rpc.Status` of a failed or cancelled operation, else None."""
        if self.state is State.CANCELLED:
            return self.error or Cancelled("the operation was cancelled").status()
        if self.state is State.FAILED:
            return self.error or {"code": int(Code.UNKNOWN), "message": "failed", "details": []}
        return None
