"""`GET /openapi.json`: the OpenAPI 3.1 document of every route, built from the wire schemas.

Request and response bodies come from `app.schemas` through apispec's marshmallow plugin.
Where a wire schema has `fields.Function` fields apispec cannot see into, the document uses
a copy with those fields typed (`_documented`: same keys, nothing added). Shapes the views
build as plain dicts (the error envelope, a job type, a probe's answer) get small
documentation-only schemas here. Paths come from the app's URL map, so a route missing
from `_ROUTES` fails the build instead of going undocumented.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate
from werkzeug.routing import Rule

from app.auth import PUBLIC, public
from app.schemas import (
    BatchRunJobsRequestSchema,
    CancelOperationRequestSchema,
    ListOperationsArgsSchema,
    RunJobRequestSchema,
    WaitOperationRequestSchema,
)
from core.codes import HTTP_STATUS, Code
from core.names import JOB_NAME, OPERATION_ID, PROJECT_ID
from core.states import Event, State
from core.wire import (
    VALUE_TYPE,
    ListOperationsResponseSchema,
    OperationMetadataSchema,
    OperationSchema,
    StatusSchema,
)

bp = Blueprint("openapi", __name__)

_EXTENSION = "opqueue.openapi"
_JSON = "application/json"
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
    anonymous_access = fields.Boolean(
        data_key="anonymousAccess",
        metadata={"description": "present (true) only while OPQUEUE_INSECURE_ALLOW_ANONYMOUS "
                  "lets callers in without API keys"})
    warning = fields.String(metadata={"description": "what an operator should know"})


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
_COMPONENTS: dict[str, tuple[type[Schema], dict[str, Any]]] = {
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


def _path_parameter(name: str, pattern: re.Pattern[str], description: str,
                    example: str) -> dict[str, Any]:
    return {"in": "path", "name": name, "required": True, "description": description,
            "schema": {"type": "string", "pattern": f"^{pattern.pattern}$"}, "example": example}


# Flask's name of a path variable → its OpenAPI parameter.
_PATH_PARAMETERS = {
    "project": _path_parameter(
        "project", PROJECT_ID, "project id: 1-63 lowercase letters, digits and hyphens, "
                               "starting with a letter", "demo"),
    "operation_id": _path_parameter(
        "operation", OPERATION_ID, "operation id: a lowercase UUID",
        "0b0c8a4e-6f7e-4c3b-9d55-2f1e0a8b9c7d"),
    "job": _path_parameter("job", JOB_NAME, "job type name", "demo.sleep"),
}


@dataclass(frozen=True)
class _Route:
    """What the URL map does not know about an endpoint."""

    operation_id: str
    response: str  # component name of the 200 body
    body: str | None = None  # component name of the (optional) JSON request body
    query: type[Schema] | None = None
    content: str = "application/json"  # media type of the 200 body


_ROUTES = {
    "operations.list_operations": _Route("ListOperations", "ListOperationsResponse",
                                         query=ListOperationsArgsSchema),
    "operations.get_operation": _Route("GetOperation", "Operation"),
    "operations.delete_operation": _Route("DeleteOperation", "Empty"),
    "operations.cancel_operation": _Route("CancelOperation", "Empty",
                                          body="CancelOperationRequest"),
    "operations.wait_operation": _Route("WaitOperation", "Operation",
                                        body="WaitOperationRequest"),
    "jobs.run_job": _Route("RunJob", "Operation", body="RunJobRequest"),
    "jobs.batch_run_jobs": _Route("BatchRunJobs", "BatchRunJobsResponse",
                                  body="BatchRunJobsRequest"),
    "operations.list_webhook_deliveries": _Route("ListWebhookDeliveries", "WebhookDeliveries"),
    "watch.watch_operation": _Route("WatchOperation", "EventStream",
                                    content="text/event-stream"),
    "watch.watch_operations": _Route("WatchOperations", "EventStream",
                                     content="text/event-stream"),
    "jobs.list_jobs": _Route("ListJobs", "ListJobsResponse"),
    "jobs.get_job": _Route("GetJob", "Job"),
    "health.healthz": _Route("CheckLiveness", "ServingStatus"),
    "health.readyz": _Route("CheckReadiness", "ServingStatus"),
    "metrics.get_metrics": _Route("GetMetrics", "PrometheusText",
                                  content="text/plain; version=0.0.4"),
    "openapi.get_openapi": _Route("GetOpenApi", "OpenApiDocument"),
}

_METHODS = ("get", "post", "delete")
# A Flask path variable, `<name>` or `<converter:name>`.
_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
# Blueprints of pages for people (the dashboard, the API docs) and Flask's own static
# files: not API calls, so neither in the document nor in `_ROUTES`.
NOT_API = frozenset({"static", "ui", "docs"})


def is_api_route(rule: Rule) -> bool:
    """Whether `rule` belongs to the API, and so to its document."""
    return rule.endpoint.partition(".")[0] not in NOT_API


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of `app`."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="opqueue", version="v1", openapi_version="3.1.0", plugins=[plugin],
        info={"description": "Jobs as google.longrunning.Operation resources over HTTP/JSON."})
    assert plugin.converter is not None
    plugin.converter.add_attribute_function(_constant)
    plugin.converter.add_attribute_function(_dict_keys_and_size)
    plugin.converter.add_attribute_function(_wire_default)
    for name, (schema, extra) in _COMPONENTS.items():
        spec.components.schema(name, extra, schema=schema)
    spec.components.schema("PrometheusText", {
        "type": "string", "description": "Prometheus text exposition format 0.0.4"})
    spec.components.schema("EventStream", {
        "type": "object", "description": "one server-sent event",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": r"^\d+-\d+$",
                   "description": "its change stream entry: send as Last-Event-ID to resume"},
            "event": {"enum": ["snapshot", "create", *(e.value for e in Event), "delete"]},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "description": "the Operation, or {name, deleted: true}"}}})
    spec.components.schema("OpenApiDocument", {
        "type": "object", "required": ["openapi", "info", "paths"],
        "properties": {"openapi": {"const": "3.1.0"}}})
    # Either scheme will do; see app/auth.py.
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme(
        "googApiKey", {"type": "apiKey", "in": "header", "name": "x-goog-api-key"})
    spec.components.response("Error", {
        "description": "an error: Google's error envelope, with the HTTP status of its code",
        "content": {_JSON: {"schema": "ErrorResponse"}}})

    rules: dict[str, list[Rule]] = defaultdict(list)
    for rule in app.url_map.iter_rules():
        if is_api_route(rule):
            rules[_openapi_path(rule)].append(rule)
    for path, same_path in sorted(rules.items()):
        operations = {method: _operation(app, rule)
                      for rule in same_path for method in _METHODS
                      if method.upper() in (rule.methods or ())}
        parameters = [_PATH_PARAMETERS[name] for name in _variables(same_path[0])]
        spec.path(path=path, operations=operations, parameters=parameters)
    return spec.to_dict()


def _operation(app: Flask, rule: Rule) -> dict[str, Any]:
    route = _ROUTES.get(rule.endpoint)
    if route is None:
        raise LookupError(f"route {rule.rule} ({rule.endpoint}) is not in app/openapi.py _ROUTES")
    doc = (app.view_functions[rule.endpoint].__doc__ or "").strip()
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": doc.splitlines()[0] if doc else route.operation_id,
        "tags": [rule.endpoint.split(".")[0]],
        "responses": {
            "200": {"description": "OK", "content": {route.content: {"schema": route.response}}},
            "default": "Error",
        },
    }
    public = getattr(app.view_functions[rule.endpoint], "required_role", None) == PUBLIC
    operation["security"] = [] if public else [{"bearer": []}, {"googApiKey": []}]
    if route.query is not None:
        operation["parameters"] = [{"in": "query", "schema": route.query}]
    if route.body is not None:
        # An empty body counts as `{}`.
        operation["requestBody"] = {"required": False,
                                    "content": {_JSON: {"schema": route.body}}}
    return operation


def _variables(rule: Rule) -> list[str]:
    return _VARIABLE.findall(rule.rule)


def _openapi_path(rule: Rule) -> str:
    """`/v1/projects/<project>/operations/<operation_id>:cancel` → `.../{operation}:cancel`."""
    return _VARIABLE.sub(lambda match: "{" + _PATH_PARAMETERS[match.group(1)]["name"] + "}",
                         rule.rule)


def _constant(self: Any, field: fields.Field[Any], **_: Any) -> dict[str, Any]:
    """`fields.Constant` → `const` (apispec writes only a `default`)."""
    return {"const": field.constant} if isinstance(field, fields.Constant) else {}


def _dict_keys_and_size(self: Any, field: fields.Field[Any], ret: dict[str, Any],
                        **_: Any) -> dict[str, Any]:
    """A `fields.Dict`'s key rules → `propertyNames`, its `Length` → min/maxProperties."""
    if not isinstance(field, fields.Dict):
        return {}
    extra: dict[str, Any] = {}
    for length, properties in (("minLength", "minProperties"), ("maxLength", "maxProperties")):
        if length in ret:
            extra[properties] = ret.pop(length)
    if field.key_field is not None:
        keys = {key: value for key, value in self.field2property(field.key_field).items()
                if key in ("pattern", "minLength", "maxLength")}
        if keys:
            extra["propertyNames"] = keys
    return extra


def _wire_default(self: Any, field: fields.Field[Any], ret: dict[str, Any],
                  **_: Any) -> dict[str, Any]:
    """Drop a `load_default` the field itself would reject: it stands for "absent"."""
    if "default" in ret and ret["default"] is not None:
        try:
            for validator in field.validators:
                validator(ret["default"])
        except ValidationError:
            del ret["default"]
    return {}


@bp.get("/openapi.json")
@public
def get_openapi() -> Response:
    """This document: the OpenAPI 3.1 description of every route."""
    text = current_app.extensions.get(_EXTENSION)
    if text is None:
        # Built on first use, once every blueprint is registered; then kept for the app.
        text = current_app.extensions[_EXTENSION] = json.dumps(build_document(current_app))
    return current_app.response_class(text, mimetype=_JSON)
