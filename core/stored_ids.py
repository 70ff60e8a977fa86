"""Operation ids as the store keeps them: a canonical UUID (36 characters on the wire) in
22, its 16 bytes in unpadded URL-safe base64, in its hash's key and its project-index
entry: bytes paid once per stored operation in each. (Change-stream entries, read by
consumers outside opqueue, carry the id as on the wire.)

An id that is not a canonical UUID (none is created so; tests and tools may use others)
is kept as it is: no stored form of a UUID is 36 characters long, nor is a kept id 22 long
unless it is not one, which `check_operation_id` refuses at the API.
"""

from __future__ import annotations

import base64
import binascii
import uuid

_STORED_LENGTH = 22


def stored_id(operation_id: str) -> str:
    """The form of `operation_id` in the store's keys and entries."""
    try:
        value = uuid.UUID(operation_id)
    except ValueError:
        return operation_id
    if str(value) != operation_id:  # not canonical: kept as it is
        return operation_id
    return base64.urlsafe_b64encode(value.bytes).decode()[:_STORED_LENGTH]


def wire_id(stored: str) -> str:
    """The operation id that `stored` (as `stored_id` made it) stands for."""
    if len(stored) != _STORED_LENGTH:
        return stored
    try:
        return str(uuid.UUID(bytes=base64.urlsafe_b64decode(stored + "==")))
    except (binascii.Error, ValueError):
        return stored
