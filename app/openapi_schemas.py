"""Documentation-only schemas of the OpenAPI document, and its table of components.

Request and response bodies come from `app.schemas` and `core.wire`. Where a wire schema
has `fields.Function` fields apispec cannot see into, the document uses a copy with those
fields typed (`_documented`: same keys, nothing added). Shapes the views build as plain
dicts (the error envelope, a job type, a probe's answer) get small schemas here.
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, fields, validate

from app.schemas import (
    BatchRunJobsRequestSchema,
    CancelOperationRequestSchema,
    RunJobRequestSchema,
    WaitOperationRequestSchema,
)
from core.codes import HTTP_STATUS, Code
from core.states import Event, State
from core.wire import (
    VALUE_TYPE,
    ListOperationsResponseSchema,
    OperationMetadataSchema,
    OperationSchema,
    StatusSchema,
)

_ERRORS = [code for code in Code if code is not Code.OK]
_DURATION = {"type": "string", "pattern": r"^\d+(\.\d+)?s$", "examples": ["600s"]}


class AnySchema(Schema):
    """`google.protobuf.Any` in JSON: the message's fields inline next to its `@type`."""

    type = fields.String(data_key="@type", required=True)

    class Meta:
        unknown = INCLUDE


def _documented(schema: type[Schema], name: str,
                **overrides: fields.Field[Any]) -> type[Schema]:
    """`schema` with fields apispec cannot see into (`Function`...) replaced by typed ones.

    Only existing fields can be replaced, so the documented keys stay the wire schema's keys.
    """
    declared = schema().fields
    unknown = overrides.keys() - declared.keys()
    assert not unknown, f"{schema.__name__} has no field {unknown}"
    return Schema.from_dict({**declared, **overrides}, name=name)


StatusDoc = _documented(StatusSchema, "Status", details=fields.List(fields.Nested(AnySchema)))

OperationMetadataDoc = _documented(
    OperationMetadataSchema, "OperationMetadata",
    state=fields.String(validate=validate.OneOf([state.value for state in State])),
    create_time=fields.DateTime(data_key="createTime"),
    start_time=fields.DateTime(data_key="startTime"),
    update_time=fields.DateTime(data_key="updateTime"),
    end_time=fields.DateTime(data_key="endTime"),
    progress_percent=fields.Integer(data_key="progressPercent",
                                    validate=validate.Range(min=0, max=100)))


class ValueSchema(Schema):
    """The job's return value as a `google.protobuf.Value` packed in an Any."""

    type = fields.Constant(VALUE_TYPE, data_key="@type")
    value = fields.Raw(metadata={"description": "any JSON value"})


OperationDoc = _documented(
    OperationSchema, "Operation",
    metadata=fields.Nested(OperationMetadataDoc), error=fields.Nested(StatusDoc),
    response=fields.Nested(ValueSchema))

ListOperationsResponseDoc = _documented(
    ListOperationsResponseSchema, "ListOperationsResponse",
    operations=fields.List(fields.Nested(OperationDoc)))


BatchRunJobsResponseDoc = Schema.from_dict(
    {"operations": fields.List(fields.Nested(OperationDoc), required=True,
                               metadata={"description": "one per request, in order"})},
    name="BatchRunJobsResponse")


class ErrorSchema(Schema):
    """The body of Google's error envelope."""

    code = fields.Integer(required=True,
                          validate=validate.OneOf(sorted({HTTP_STATUS[code] for code in _ERRORS})),
                          metadata={"description": "the HTTP status"})
    message = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf([code.name for code in _ERRORS]))
    details = fields.List(fields.Nested(AnySchema), required=True)


class ErrorResponseSchema(Schema):
    """Google's error envelope: every error response, whatever its status."""

    error = fields.Nested(ErrorSchema, required=True)


class JobLimitsSchema(Schema):
    """A job type's limits; durations as protobuf Duration strings."""

    timeout = fields.String(required=True, metadata=_DURATION)
    max_timeout = fields.String(data_key="maxTimeout", required=True, metadata=_DURATION)
    max_retries = fields.Integer(data_key="maxRetries", required=True,
                                 validate=validate.Range(min=0))


class JobSchema(Schema):
    """A job type: its name, description, input JSON Schema and limits."""

    name = fields.String(required=True)
    description = fields.String(required=True)
    input_schema = fields.Dict(data_key="inputSchema", required=True,
                               metadata={"description": "JSON Schema of the job's `input`"})
    limits = fields.Nested(JobLimitsSchema, required=True)


class ListJobsResponseSchema(Schema):
    """Every registered job type."""

    jobs = fields.List(fields.Nested(JobSchema), required=True)


class ServingStatusSchema(Schema):
    """A health probe's answer."""

    status = fields.String(required=True, validate=validate.OneOf(["SERVING"]))


class EmptySchema(Schema):
    """`google.protobuf.Empty`."""


class WebhookDeliverySchema(Schema):
    """One webhook delivery attempt and its outcome."""

    delivery = fields.String(required=True, metadata={
        "description": "idempotency id: the same on every attempt of one delivery"})
    event = fields.String(required=True, validate=validate.OneOf(["done", "progress"]))
    attempt = fields.Integer(required=True)
    time = fields.String(required=True, metadata={"description": "RFC 3339, UTC"})
    url = fields.String(required=True)
    status = fields.Integer(metadata={"description": "the receiver's HTTP status, if any"})
    error = fields.String(metadata={"description": "why the attempt failed, if it did"})
    outcome = fields.String(required=True, validate=validate.OneOf(
        ["delivered", "retrying", "failed"]))


class WebhookDeliveriesSchema(Schema):
    """An operation's webhook delivery log."""

    deliveries = fields.List(fields.Nested(WebhookDeliverySchema), required=True)


# Component name → schema, plus JSON Schema keywords the fields cannot say.
COMPONENTS: dict[str, tuple[type[Schema], dict[str, Any]]] = {
    "Any": (AnySchema, {}),
    "Status": (StatusDoc, {"required": ["code", "message"]}),
    "OperationMetadata": (OperationMetadataDoc, {
        "required": ["@type", "job", "state", "createTime", "updateTime"]}),
    "Value": (ValueSchema, {"required": ["@type", "value"]}),
    "Operation": (OperationDoc, {
        "required": ["name", "metadata", "done"],
        "oneOf": [
            {"properties": {"done": {"const": False}},
             "not": {"anyOf": [{"required": ["error"]}, {"required": ["response"]}]}},
            {"properties": {"done": {"const": True}}, "required": ["error"],
             "not": {"required": ["response"]}},
            {"properties": {"done": {"const": True}}, "required": ["response"],
             "not": {"required": ["error"]}},
        ]}),
    "ListOperationsResponse": (ListOperationsResponseDoc, {"required": ["operations"]}),
    "RunJobRequest": (RunJobRequestSchema, {"examples": [
        {"input": {"seconds": 3, "steps": 6}, "labels": {"team": "ml"}, "timeout": "60s"}]}),
    "BatchRunJobsRequest": (BatchRunJobsRequestSchema, {"examples": [
        {"requests": [{"input": {"seconds": 1}},
                      {"input": {"seconds": 2}, "labels": {"n": "2"}}]}]}),
    "BatchRunJobsResponse": (BatchRunJobsResponseDoc, {"required": ["operations"]}),
    "WaitOperationRequest": (WaitOperationRequestSchema, {"examples": [{"timeout": "30s"}]}),
    "CancelOperationRequest": (CancelOperationRequestSchema, {}),
    "Empty": (EmptySchema, {}),
    "Error": (ErrorSchema, {}),
    "ErrorResponse": (ErrorResponseSchema, {}),
    "JobLimits": (JobLimitsSchema, {}),
    "Job": (JobSchema, {}),
    "ListJobsResponse": (ListJobsResponseSchema, {}),
    "ServingStatus": (ServingStatusSchema, {}),
    "WebhookDelivery": (WebhookDeliverySchema, {}),
    "WebhookDeliveries": (WebhookDeliveriesSchema, {}),
}

# Components written directly in JSON Schema: bodies that are not JSON objects of ours.
RAW_COMPONENTS: dict[str, dict[str, Any]] = {
    "PrometheusText": {
        "type": "string", "description": "Prometheus text exposition format 0.0.4"},
    "EventStream": {
        "type": "object", "description": "one server-sent event",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": r"^\d+-\d+$",
                   "description": "its change stream entry: send as Last-Event-ID to resume"},
            "event": {"enum": ["snapshot", "create", *(e.value for e in Event), "delete"]},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "description": "the Operation, or {name, deleted: true}"}}},
    "OpenApiDocument": {
        "type": "object", "required": ["openapi", "info", "paths"],
        "properties": {"openapi": {"const": "3.1.0"}}},
}
