"""Job types: describe them, and run one (or many) as new operations."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint
from marshmallow import Schema

from app.api_keys import Role
from app.auth import requires
from app.openapi import documented
from app.schemas import BatchRunJobsRequestSchema, RunJobRequestSchema, load_body
from app.services import services
from core.jobs import JobSpec
from core.names import check_project
from core.timestamps import parse_duration
from core.wire import dump_operation
from workers.submission import RunRequest

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
@documented("ListJobsResponse")
def list_jobs() -> dict[str, Any]:
    """Every registered job type."""
    return {"jobs": [describe(spec) for spec in services().registry]}


@bp.get("/v1/jobs/<job>")
@documented("Job")
def get_job(job: str) -> dict[str, Any]:
    """One job type, or NOT_FOUND."""
    return describe(services().registry.get(job))


@bp.post("/v1/projects/<project>/jobs/<job>:run")
@requires(Role.SUBMITTER)
@documented("Operation", body="RunJobRequest")
def run_job(project: str, job: str) -> dict[str, Any]:
    """Validate the input, store a PENDING operation and queue its job; nothing on error."""
    check_project(project)
    svc = services()
    [submitted] = svc.submitter.submit(project, svc.registry.get(job),
                                       [_run_request(load_body(_RUN))])
    return dump_operation(submitted.operation)


@bp.post("/v1/projects/<project>/jobs/<job>:batchRun")
@requires(Role.SUBMITTER)
@documented("BatchRunJobsResponse", body="BatchRunJobsRequest")
def batch_run_jobs(project: str, job: str) -> dict[str, Any]:
    """Run many jobs of one type: all validated first, then stored and queued in one go."""
    check_project(project)
    svc = services()
    results = svc.submitter.submit(
        project, svc.registry.get(job),
        [_run_request(body) for body in load_body(_BATCH)["requests"]], batch=True)
    return {"operations": [dump_operation(result.operation) for result in results]}


_RUN = RunJobRequestSchema()
_BATCH = BatchRunJobsRequestSchema()


def _run_request(body: dict[str, Any]) -> RunRequest:
    """A run request's body, loaded by its schema, as the submitter takes it."""
    notify = body["notify"]
    return RunRequest(
        input=body["input"], labels=body["labels"], request_id=body["request_id"],
        notify=None if notify is None else (notify["url"], tuple(notify["events"])),
        timeout=None if body["timeout"] is None else parse_duration(body["timeout"], "timeout"))


def _seconds(value: float) -> str:
    return f"{value:g}s"
