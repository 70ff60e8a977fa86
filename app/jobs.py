"""Job types: describe them, and run one (or many) as new operations."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint
from marshmallow import Schema

from app.auth import requires
from app.keys import Role
from app.limits import check_run_request
from app.schemas import BatchRunJobsRequestSchema, RunJobRequestSchema, load_body
from app.services import Services, services
from core.errors import BAD_REQUEST, InvalidArgument, OperationError, Unavailable
from core.jobs import JobSpec
from core.names import check_project, new_operation_id, parse_duration
from core.operation import Operation
from core.store import NewOperation
from core.task_outbox import Entry, Submission
from core.wire import dump_operation
from workers.relay import now_ms

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
    run = _prepare(spec, project, load_body(_RUN), svc)
    [(operation, created)] = _store_and_queue(svc, project, spec, [run])
    if created:
        log.info("queued %s", operation.name,
                 extra={"operation": operation.name, "job": spec.name})
    return dump_operation(operation)


@bp.post("/v1/projects/<project>/jobs/<job>:batchRun")
@requires(Role.SUBMITTER)
def batch_run_jobs(project: str, job: str) -> dict[str, Any]:
    """Run many jobs of one type: all validated first, then stored and queued in one go."""
    check_project(project)
    svc = services()
    spec = svc.registry.get(job)
    runs = []
    for index, body in enumerate(load_body(_BATCH)["requests"]):
        try:
            runs.append(_prepare(spec, project, body, svc))
        except OperationError as exc:
            raise _at_index(index, exc) from None
    results = _store_and_queue(svc, project, spec, runs)
    queued = sum(created for _, created in results)
    if queued:
        log.info("queued %d operations in project %s", queued, project,
                 extra={"job": spec.name})
    return {"operations": [dump_operation(operation) for operation, _ in results]}


_RUN = RunJobRequestSchema()
_BATCH = BatchRunJobsRequestSchema()


@dataclass(frozen=True)
class _Run:
    """A validated run request: what to store and what to queue."""

    new: NewOperation
    input: dict[str, Any]
    timeout: float


def _prepare(spec: JobSpec, project: str, body: dict[str, Any], svc: Services) -> _Run:
    """Check one run request against the job and the limits; nothing is stored yet."""
    check_run_request(body["input"], body["labels"], svc.settings)
    spec.load_input(body["input"])
    timeout = _timeout(spec, body["timeout"])
    notify = body["notify"]
    if notify is not None:
        svc.webhooks.check_url(notify["url"])
        svc.webhooks.secret(project)  # refuse now what could not be signed later
    return _Run(NewOperation(new_operation_id(), body["labels"], body["request_id"],
                             None if notify is None else (notify["url"],
                                                          tuple(notify["events"]))),
                body["input"], timeout)


def _store_and_queue(svc: Services, project: str, spec: JobSpec,
                     runs: list[_Run]) -> list[tuple[Operation, bool]]:
    """Store the runs' operations and queue the jobs of the new ones (see `create_many`).

    With the broker in the store's Redis, both happen in one atomic step. With another
    broker, each operation is stored with its task message in the task outbox, in one
    atomic step, and the messages are published at once; if the broker refuses them, the
    new operations and their entries are removed again and the call answers UNAVAILABLE.
    An API process killed in between leaves the entries for a worker's relay to publish.
    """
    submissions = [Submission(project, run.new.id, spec.name, run.input, run.timeout)
                   for run in runs]
    if svc.dispatcher.shares_store:
        messages = svc.dispatcher.messages(submissions)
        return svc.store.create_many(project, spec.name, [
            replace(run.new, message=message)
            for run, message in zip(runs, messages, strict=True)])
    stored = now_ms()
    staged = [svc.relay.outbox.entry(submission, stored) for submission in submissions]
    results = svc.store.create_many(project, spec.name, [
        replace(run.new, message=message) for run, (_, message) in zip(runs, staged, strict=True)])
    _publish(svc, project, [entry for (entry, _), (_, created)
                            in zip(staged, results, strict=True) if created])
    return results


def _publish(svc: Services, project: str, entries: list[Entry]) -> None:
    """Publish the new operations' jobs; if the broker refuses, forget them and say so."""
    try:
        svc.relay.publish(entries)
    except Exception:
        for entry in entries:  # first: a message without its operation is harmless
            svc.store.delete(project, entry.submission.operation_id)
        svc.relay.outbox.remove(entries)
        log.exception("could not queue %d operation(s) in project %s; their records were "
                      "removed", len(entries), project)
        raise Unavailable("the job could not be queued and nothing was stored; retry",
                          reason="BROKER_UNAVAILABLE") from None


def _at_index(index: int, exc: OperationError) -> OperationError:
    """`exc`, raised for one request of a batch, saying which one (`requests[i]`)."""
    where = f"requests[{index}]"
    details = [{**detail, "fieldViolations": [
        {**violation, "field": f"{where}.{violation['field']}"}
        for violation in detail["fieldViolations"]]} if detail.get("@type") == BAD_REQUEST
        else detail for detail in exc.extra_details]
    return type(exc)(f"{where}: {exc.message}", reason=exc.reason,
                     metadata={**exc.metadata, "requestIndex": str(index)}, details=details)


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
