"""The `google.rpc.Code` enum and its HTTP mapping: the one code table of client and server.

The numbers come from `google.rpc.code_pb2`; the names are written out so that type checkers
know them (tests/unit/test_codes.py checks that they are exactly code.proto's). The HTTP
statuses are the mapping code.proto documents.
"""

from enum import IntEnum

# mypy finds the stubs of this namespace package only when imported by its full path.
import google.rpc.code_pb2 as code_pb2  # noqa: PLR0402


class Code(IntEnum):
    """Canonical error codes of `google.rpc.Code`."""

    OK = code_pb2.OK
    CANCELLED = code_pb2.CANCELLED
    UNKNOWN = code_pb2.UNKNOWN
    INVALID_ARGUMENT = code_pb2.INVALID_ARGUMENT
    DEADLINE_EXCEEDED = code_pb2.DEADLINE_EXCEEDED
    NOT_FOUND = code_pb2.NOT_FOUND
    ALREADY_EXISTS = code_pb2.ALREADY_EXISTS
    PERMISSION_DENIED = code_pb2.PERMISSION_DENIED
    RESOURCE_EXHAUSTED = code_pb2.RESOURCE_EXHAUSTED
    FAILED_PRECONDITION = code_pb2.FAILED_PRECONDITION
    ABORTED = code_pb2.ABORTED
    OUT_OF_RANGE = code_pb2.OUT_OF_RANGE
    UNIMPLEMENTED = code_pb2.UNIMPLEMENTED
    INTERNAL = code_pb2.INTERNAL
    UNAVAILABLE = code_pb2.UNAVAILABLE
    DATA_LOSS = code_pb2.DATA_LOSS
    UNAUTHENTICATED = code_pb2.UNAUTHENTICATED


HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}
