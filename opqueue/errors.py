"""What the opqueue client raises: one `OpqueueError` leaf per `google.rpc.Code`.

The same class whether the API refused a call (Google's HTTP error envelope) or an
operation failed (its `error` Status), as `google.api_core.exceptions` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from opqueue.codes import HTTP_STATUS, Code

Json = dict[str, Any]
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


class OpqueueError(Exception):
    """A refused call or a failed operation, with its `google.rpc` code and details."""

    code: ClassVar[Code] = Code.UNKNOWN

    def __init__(self, message: str, *, reason: str = "", details: Sequence[Json] = (),
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.details = list(details)
        self.http_status = http_status  # None when the error is an operation's outcome

    @property
    def status(self) -> str:
        """The code's name, e.g. `NOT_FOUND`."""
        return self.code.name

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


class Cancelled(OpqueueError):
    code = Code.CANCELLED


class Unknown(OpqueueError):
    code = Code.UNKNOWN


class InvalidArgument(OpqueueError):
    code = Code.INVALID_ARGUMENT


class DeadlineExceeded(OpqueueError):
    code = Code.DEADLINE_EXCEEDED


class NotFound(OpqueueError):
    code = Code.NOT_FOUND


class AlreadyExists(OpqueueError):
    code = Code.ALREADY_EXISTS


class PermissionDenied(OpqueueError):
    code = Code.PERMISSION_DENIED


class ResourceExhausted(OpqueueError):
    code = Code.RESOURCE_EXHAUSTED


class FailedPrecondition(OpqueueError):
    code = Code.FAILED_PRECONDITION


class Aborted(OpqueueError):
    code = Code.ABORTED


class OutOfRange(OpqueueError):
    code = Code.OUT_OF_RANGE


class Unimplemented(OpqueueError):
    code = Code.UNIMPLEMENTED


class Internal(OpqueueError):
    code = Code.INTERNAL


class Unavailable(OpqueueError):
    code = Code.UNAVAILABLE


class DataLoss(OpqueueError):
    code = Code.DATA_LOSS


class Unauthenticated(OpqueueError):
    code = Code.UNAUTHENTICATED


BY_CODE: dict[Code, type[OpqueueError]] = {
    cls.code: cls
    for cls in (Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
                PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
                Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated)
}


def error_from_status(status: Mapping[str, Any],
                      http_status: int | None = None) -> OpqueueError:
    """The exception for a `google.rpc.Status` JSON object, e.g. a failed operation's error."""
    try:
        code = Code(status.get("code", Code.UNKNOWN))
    except ValueError:
        code = Code.UNKNOWN
    details = [d for d in status.get("details") or () if isinstance(d, dict)]
    info = next((d for d in details if d.get("@type") == ERROR_INFO), {})
    return BY_CODE.get(code, Unknown)(str(status.get("message", "")),
                                      reason=str(info.get("reason", "")),
                                      details=details, http_status=http_status)


def error_from_envelope(body: Any, http_status: int) -> OpqueueError:
    """The exception for an HTTP error answer: Google's `{"error": {...}}` envelope, or
    whatever a proxy in between sent (then the HTTP status decides the class)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"message": f"HTTP {http_status}"}
    name = str(error.get("status"))
    code = Code[name] if name in Code.__members__ else _code_for_http(http_status)
    # The envelope's `code` is the HTTP status; the Status wants the rpc code.
    return error_from_status({**error, "code": int(code)}, http_status)


def _code_for_http(http_status: int) -> Code:
    """The first rpc code served with `http_status` (400 → INVALID_ARGUMENT), else UNKNOWN."""
    return next((code for code, status in HTTP_STATUS.items()
                 if status == http_status and code is not Code.OK), Code.UNKNOWN)
