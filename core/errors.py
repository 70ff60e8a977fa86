"""One error hierarchy: every failure a caller or a job can see is an `OperationError`.

Each leaf is named after its `google.rpc.Code`. The HTTP layer renders them as the Google
error envelope; the workers store them as the `google.rpc.Status` of a failed operation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from core.codes import HTTP_STATUS, Code

DOMAIN = "opqueue"
TYPE_PREFIX = "type.googleapis.com/"
ERROR_INFO = TYPE_PREFIX + "google.rpc.ErrorInfo"
BAD_REQUEST = TYPE_PREFIX + "google.rpc.BadRequest"
RETRY_INFO = TYPE_PREFIX + "google.rpc.RetryInfo"


class OperationError(Exception):
    """An error with a `google.rpc.Code`, a reason and optional `google.rpc` details."""

    code: ClassVar[Code] = Code.UNKNOWN
    default_reason: ClassVar[str] = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        details: Iterable[dict[str, Any]] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})
        self.extra_details = list(details)
        self.retry_after = retry_after
        if retry_after is not None:  # a RetryInfo detail: when the same call may succeed
            self.extra_details.append({"@type": RETRY_INFO, "retryDelay": _duration(retry_after)})

    def status(self) -> dict[str, Any]:
        """This error as a `google.rpc.Status` JSON object."""
        return {"code": int(self.code), "message": self.message, "details": self.details()}

    def envelope(self) -> dict[str, Any]:
        """This error as the Google HTTP error envelope `{"error": {code, message, ...}}`."""
        return {"error": {"code": HTTP_STATUS[self.code], "message": self.message,
                          "status": self.code.name, "details": self.details()}}

    def details(self) -> list[dict[str, Any]]:
        """The `ErrorInfo` detail first, then any others the raiser attached."""
        info = {"@type": ERROR_INFO, "reason": self.reason, "domain": DOMAIN,
                "metadata": self.metadata}
        return [info, *self.extra_details]


class Cancelled(OperationError):
    code = Code.CANCELLED
    default_reason = "OPERATION_CANCELLED"


class Unknown(OperationError):
    code = Code.UNKNOWN
    default_reason = "UNKNOWN"


class InvalidArgument(OperationError):
    code = Code.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    @classmethod
    def for_fields(cls, violations: Mapping[str, str], message: str = "") -> InvalidArgument:
        """An error with a `BadRequest` detail holding one field violation per bad field."""
        listed = [{"field": name, "description": text} for name, text in violations.items()]
        summary = "; ".join(f"{v['field']}: {v['description']}" for v in listed)
        return cls(
            message or f"invalid request: {summary}",
            reason="INVALID_FIELD",
            details=[{"@type": BAD_REQUEST, "fieldViolations": listed}],
        )


class DeadlineExceeded(OperationError):
    code = Code.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


class NotFound(OperationError):
    code = Code.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(OperationError):
    code = Code.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class PermissionDenied(OperationError):
    code = Code.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class ResourceExhausted(OperationError):
    code = Code.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class FailedPrecondition(OperationError):
    code = Code.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Aborted(OperationError):
    code = Code.ABORTED
    default_reason = "ABORTED"


class OutOfRange(OperationError):
    code = Code.OUT_OF_RANGE
    default_reason = "OUT_OF_RANGE"


class Unimplemented(OperationError):
    code = Code.UNIMPLEMENTED
    default_reason = "UNIMPLEMENTED"


class Internal(OperationError):
    code = Code.INTERNAL
    default_reason = "INTERNAL"


class Unavailable(OperationError):
    code = Code.UNAVAILABLE
    default_reason = "UNAVAILABLE"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("retry_after", 1.0)  # the one code that means "retry the same call"
        super().__init__(message, **kwargs)


class DataLoss(OperationError):
    code = Code.DATA_LOSS
    default_reason = "DATA_LOSS"


class Unauthenticated(OperationError):
    code = Code.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


BY_CODE: dict[Code, type[OperationError]] = {
    cls.code: cls
    for cls in (Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
                PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
                Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated)
}


def operation_not_found(name: str) -> NotFound:
    """NOT_FOUND for an operation that does not exist (any more)."""
    return NotFound(f"operation {name} not found", reason="OPERATION_NOT_FOUND",
                    metadata={"name": name})


def reason_for(exc: BaseException) -> str:
    """`ValueError` → `VALUE_ERROR`: an ErrorInfo reason naming an exception class."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(exc).__name__).upper()


def field_violations(messages: Any, prefix: str = "") -> dict[str, str]:
    """marshmallow's nested error messages → {"input.a.b": "message; message"}."""
    if isinstance(messages, Mapping):
        flat: dict[str, str] = {}
        for key, value in messages.items():
            name = prefix if key == "_schema" else f"{prefix}.{key}" if prefix else str(key)
            flat.update(field_violations(value, name))
        return flat
    if isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        return {prefix: "; ".join(messages)}
    if isinstance(messages, list):
        return {k: v for item in messages for k, v in field_violations(item, prefix).items()}
    return {prefix: str(messages)}


def _duration(seconds: float) -> str:
    """A protobuf Duration string: `1s`, `0.250000000s`."""
    whole = int(seconds)
    nanos = round((seconds - whole) * 1e9)
    return f"{whole}.{nanos:09d}s" if nanos else f"{whole}s"
