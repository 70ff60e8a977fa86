"""The Operation on the wire: `google.longrunning.Operation` as proto3 JSON.

Shared by the API (every answer) and the workers (webhook payloads), so both send the same
bytes. One marshmallow schema per message, camelCase through `data_key`.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_dump

from core.errors import TYPE_PREFIX
from core.operation import Operation
from core.timestamps import format_timestamp

METADATA_TYPE = TYPE_PREFIX + "opqueue.v1.OperationMetadata"
VALUE_TYPE = TYPE_PREFIX + "google.protobuf.Value"


class StatusSchema(Schema):
    """`google.rpc.Status`."""

    code = fields.Integer()
    message = fields.String()
    details = fields.List(fields.Dict())


class OperationMetadataSchema(Schema):
    """`opqueue.v1.OperationMetadata`, packed in an Any (`@type` inline)."""

    type = fields.Constant(METADATA_TYPE, data_key="@type")
    job = fields.String()
    state = fields.Function(lambda op: op.state.value)
    create_time = fields.Function(lambda op: format_timestamp(op.create_time),
                                  data_key="createTime")
    start_time = fields.Function(lambda op: _timestamp(op.start_time), data_key="startTime")
    update_time = fields.Function(lambda op: format_timestamp(op.update_time),
                                  data_key="updateTime")
    end_time = fields.Function(lambda op: _timestamp(op.end_time), data_key="endTime")
    progress_percent = fields.Integer(data_key="progressPercent")
    status_message = fields.String(data_key="statusMessage")
    details = fields.Dict()
    attempt = fields.Integer()
    worker = fields.String()
    requested_cancellation = fields.Boolean(data_key="requestedCancellation")
    labels = fields.Dict(keys=fields.String(), values=fields.String())

    @post_dump
    def _omit_defaults(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        # proto3 JSON leaves out fields at their default value.
        return {key: value for key, value in data.items() if value not in (None, "", 0, False, {})}


_METADATA = OperationMetadataSchema()


class OperationSchema(Schema):
    """`google.longrunning.Operation`: name, metadata, done, and error xor response."""

    name = fields.String()
    metadata = fields.Function(_METADATA.dump)
    done = fields.Boolean()
    error = fields.Function(lambda op: op.status)
    response = fields.Function(
        lambda op: {"@type": VALUE_TYPE, "value": op.response} if op.state == "SUCCEEDED"
        else None)

    @post_dump
    def _one_outcome(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {key: value for key, value in data.items() if value is not None}


class ListOperationsResponseSchema(Schema):
    """`google.longrunning.ListOperationsResponse`."""

    operations = fields.List(fields.Nested(OperationSchema))
    next_page_token = fields.String(data_key="nextPageToken")


_OPERATION = OperationSchema()


def dump_operation(operation: Operation) -> dict[str, Any]:
    """An Operation as proto3 JSON: what `OperationSchema` dumps, written out.

    GetOperation, ListOperations and :batchRun render every operation they answer with, so
    this is on the hot path; built directly it costs a sixth of the schema's dump (the
    schemas stay the documented shape, and a test holds the two to the same output).
    """
    meta: dict[str, Any] = {"@type": METADATA_TYPE, "job": operation.job,
                            "state": operation.state.value,
                            "createTime": format_timestamp(operation.create_time)}
    if operation.start_time is not None:
        meta["startTime"] = format_timestamp(operation.start_time)
    meta["updateTime"] = format_timestamp(operation.update_time)
    if operation.end_time is not None:
        meta["endTime"] = format_timestamp(operation.end_time)
    for key, value in (("progressPercent", operation.progress_percent),
                       ("statusMessage", operation.status_message),
                       ("details", operation.details), ("attempt", operation.attempt),
                       ("worker", operation.worker),
                       ("requestedCancellation", operation.requested_cancellation),
                       ("labels", operation.labels)):
        if value:  # proto3 JSON leaves out fields at their default value
            meta[key] = value
    dumped: dict[str, Any] = {"name": operation.name, "metadata": meta, "done": operation.done}
    status = operation.status
    if status is not None:
        dumped["error"] = status
    if operation.state == "SUCCEEDED":
        dumped["response"] = {"@type": VALUE_TYPE, "value": operation.response}
    return dumped


def dump_operation_by_schema(operation: Operation) -> dict[str, Any]:
    """The same JSON through the marshmallow schemas (the reference `dump_operation` keeps to)."""
    dumped: dict[str, Any] = _OPERATION.dump(operation)
    return dumped


def _timestamp(micros: int | None) -> str | None:
    return None if micros is None else format_timestamp(micros)
