"""Job types: describe them, and run one as a new operation."""

from __future__ import annotations

import logging
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint
from marshmallow import Schema

from app.auth import requires
from app.keys import Role
from app.limits import check_run_request
from app.schemas import RunJobRequestSchema, load_body
from app.services import services
from core.errors import InvalidArgument, Unavailable
from core.jobs import JobSpec
from core.names import check_project, new_operation_id, parse_duration
from core.wire import dump_operation

log = logging.getLogger(__name__)

bp = Blueprint("jobs", __name__)



def _inline(schema: type[Schema]) -> str:
    return ""  # no name: nested input schemas are written inline, not as $refs


_PLUGIN = MarshmallowPlugin(schema_name_resolver=_inline)
APISpec("opqueue", "v1", "3.1.0", plugins=[_PLUGIN])  # binds the plugin's converter


def describe(spec: JobSpec) -> dict[str, Any]:
    """A job type as JSON: name, description, input JSON Schema and limits."""
    assert _PLUGIN.converter is not None
    return {
        "name": spec.name,
        "description": spec.description,
        "inputSchema": _PLUGIN.converter.schema2jsonschema(spec.input_schema),
        "limits": {"timeout": _seconds(spec.timeout), "maxTimeout": _seconds(spec.max_timeout),
                   "maxRetries": spec.max_retries},
    }


@bp.get("/v1/jobs")
def list_jobs() -> dict[str, Any]:
    """Every registered job type."""
    return {"jobs": [describe(spec) for spec in services().registry]}


@bp.get("/v1/jobs/<job>")
def get_job(job: str) -> dict[str, Any]:
    """One job type, or NOT_FOUND."""
    return describe(services().registry.get(job))


@bp.post("/v1/projects/<project>/jobs/<job>:run")
@requires(Role.SUBMITTER)
def run_job(project: str, job: str) -> dict[str, Any]:
    """Validate the input, store a PENDING operation and queue its job; nothing on error."""
    check_project(project)
    svc = services()
    spec = svc.registry.get(job)
    body = load_body(RunJobRequestSchema())
    check_run_request(body["input"], body["labels"], svc.settings)
    spec.load_input(body["input"])
    timeout = _timeout(spec, body["timeout"])
    notify = body["notify"]
    if notify is not None:
        svc.webhooks.check_url(notify["url"])
        svc.webhooks.secret(project)  # refuse now what could not be signed later
    operation, created = svc.store.create(
        project, new_operation_id(), spec.name, labels=body["labels"],
        request_id=body["request_id"],
        notify=None if notify is None else (notify["url"], tuple(notify["events"])))
    if created:
        try:
            svc.dispatcher.enqueue(operation, spec, body["input"], timeout)
        except Exception:
            svc.store.delete(project, operation.id)
            log.exception("could not queue %s; its record was removed", operation.name)
            raise Unavailable("the job could not be queued and nothing was stored; retry",
                              reason="BROKER_UNAVAILABLE") from None
        log.info("queued %s (%s)", operation.name, spec.name)
    return dump_operation(operation)


def _timeout(spec: JobSpec, requested: str | None) -> float:
    if requested is None:
        return spec.timeout
    seconds = parse_duration(requested, "timeout")
    if not 0 < seconds <= spec.max_timeout:
        raise InvalidArgument.for_fields(
            {"timeout": f"must be more than 0s and at most {_seconds(spec.max_timeout)} "
                        f"for job {spec.name}"})
    return seconds


def _seconds(value: float) -> str:
    return f"{value:g}s"
