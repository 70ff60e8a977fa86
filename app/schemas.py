"""Request schemas: one marshmallow schema per message, camelCase on the wire.

What the API answers with (the Operation and friends) is in core/wire.py, shared with the
workers, which send the same JSON to webhooks.

Unknown fields raise (marshmallow's default), so a misspelt field is an error, not a no-op.
"""

from __future__ import annotations

import re
from typing import Any

from flask import request
from marshmallow import Schema, ValidationError, fields, validate

from core.errors import InvalidArgument, field_violations
from core.names import LABEL_KEY, LABEL_VALUE, OPERATION_ID
from core.timestamps import DURATION as DURATION_PATTERN
from core.webhooks import EVENTS

MAX_BATCH = 1000  # run requests in one :batchRun call
# marshmallow names list items by number (`requests.3.input`); field paths say `requests[3]`.
_LIST_INDEX = re.compile(r"\.(\d+)(?=\.|$)")

# Google's system parameters, sent by its client libraries on every call; accepted, unused.
SYSTEM_PARAMETERS = frozenset({"$alt", "alt", "$fields", "fields", "$prettyPrint",
                               "prettyPrint", "key", "$callback", "callback"})


class FullMatch(validate.Regexp):
    """`validate.Regexp` that must match the whole value (marshmallow's anchors only the start).

    The pattern is written anchored too, so that the JSON Schema apispec publishes says the same.
    """

    def __init__(self, pattern: re.Pattern[str], error: str) -> None:
        anchored = f"^(?:{pattern.pattern})$"
        super().__init__(anchored, error=error)
        self._anchored = re.compile(anchored)

    def __call__(self, value: str) -> str:  # type: ignore[override]
        # fullmatch, not match: `$` alone lets a trailing newline through.
        if self._anchored.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


DURATION_HINT = "must be a duration such as '30s'"
DURATION = FullMatch(DURATION_PATTERN, error=DURATION_HINT)


def duration() -> fields.String:
    """An optional duration such as "30s"; a number or any other value gets the same hint."""
    return fields.String(load_default=None, validate=DURATION,
                         error_messages={"invalid": DURATION_HINT})


class NotifySchema(Schema):
    """Where to POST the Operation when it reaches one of `events`."""

    url = fields.String(required=True, validate=validate.Length(max=2048))
    events = fields.List(fields.String(validate=validate.OneOf(EVENTS)), load_default=["done"],
                         validate=validate.Length(min=1, max=len(EVENTS)))


class RunJobRequestSchema(Schema):
    """Body of `POST /v1/projects/{p}/jobs/{job}:run`."""

    input = fields.Dict(keys=fields.String(), load_default=dict)
    request_id = fields.String(
        data_key="requestId", load_default="",
        validate=FullMatch(OPERATION_ID, error="must be a lowercase UUID"))
    labels = fields.Dict(
        keys=fields.String(validate=FullMatch(
            LABEL_KEY, error="label keys are 1-63 lowercase letters, digits, _ or -, "
                             "starting with a letter")),
        values=fields.String(validate=FullMatch(
            LABEL_VALUE, error="label values are 0-63 lowercase letters, digits, _ or -")),
        load_default=dict)  # how many: OPQUEUE_MAX_LABELS, checked in app/request_limits.py
    timeout = duration()
    notify = fields.Nested(NotifySchema, load_default=None)


class BatchRunJobsRequestSchema(Schema):
    """Body of `POST /v1/projects/{p}/jobs/{job}:batchRun`: up to MAX_BATCH run requests."""

    requests = fields.List(fields.Nested(RunJobRequestSchema), required=True,
                           validate=validate.Length(min=1, max=MAX_BATCH))


class WaitOperationRequestSchema(Schema):
    """Body of `POST .../operations/{id}:wait`."""

    timeout = duration()


class CancelOperationRequestSchema(Schema):
    """Body of `POST .../operations/{id}:cancel`: empty."""


class ListOperationsArgsSchema(Schema):
    """Query of `GET /v1/projects/{p}/operations`."""

    filter = fields.String(load_default="")
    page_size = fields.Integer(data_key="pageSize", load_default=0,
                               validate=validate.Range(min=0, error="must not be negative"))
    page_token = fields.String(data_key="pageToken", load_default="")


def load_body(schema: Schema) -> dict[str, Any]:
    """The JSON request body loaded by `schema`; an empty body counts as `{}`."""
    data = request.get_json(force=True, silent=False) if request.get_data() else {}
    if not isinstance(data, dict):
        raise InvalidArgument("the request body must be a JSON object")
    return _load(schema, data)


def load_query(schema: Schema) -> dict[str, Any]:
    """The query string loaded by `schema`, ignoring Google's system parameters."""
    repeated = [name for name, values in request.args.lists() if len(values) > 1]
    if repeated:
        raise InvalidArgument.for_fields({name: "may be given only once" for name in repeated})
    data = {k: v for k, v in request.args.items() if k not in SYSTEM_PARAMETERS}
    return _load(schema, data)


def _load(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise InvalidArgument.for_fields(
            {_LIST_INDEX.sub(r"[\1]", name): text
             for name, text in field_violations(exc.messages).items()}) from None
    return loaded
