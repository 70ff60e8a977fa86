"""Submitting jobs: the one way a run request becomes a stored operation with a queued job.

Every front end (the HTTP API, and any other that runs jobs) parses and authorises a
request, then makes one call, `Submitter.submit`, which checks the runs against their job
type and this deployment's limits, stores their operations and queues their jobs. Nothing
is stored or queued unless every run of the call passes its checks.

How a job reaches the broker depends on where the broker is:

- in the store's own Redis: each job's task message is built here, unsent, and pushed by
  the store's creating script onto its queue, so an operation and its message are written
  in one atomic step (`_store_and_queue`);
- elsewhere: the same creating step records each job's message in the store's task outbox
  (core/task_outbox.py), and the messages are published at once, together with those of
  concurrent requests (workers/publisher.py), each entry removed after the broker's confirm
  (workers/relay.py); should the broker refuse them, the new
  operations are deleted again, then their entries, and the caller is told to retry. A
  process killed in between leaves the entries for a worker's relay to publish
  (`_store_then_publish`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from core.config import Settings
from core.errors import BAD_REQUEST, InvalidArgument, OperationError, Unavailable
from core.jobs import JobSpec
from core.names import new_operation_id
from core.operation import Operation
from core.store import NewOperation, OperationStore, Push
from core.task_outbox import Submission, TaskOutbox
from core.webhooks import WebhookPolicy
from workers.dispatch import Dispatcher
from workers.publisher import Publisher
from workers.relay import Relay, now_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    """One run of a job as a front end parsed it; checked by `Submitter.submit`."""

    input: Any
    labels: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""  # the client's idempotency key: the same one, the same operation
    notify: tuple[str, tuple[str, ...]] | None = None  # webhook (url, events)
    timeout: float | None = None  # seconds; None: the job type's own


class Submitted(NamedTuple):
    """A submitted run's operation, and whether this call created it (else its requestId
    named an existing one)."""

    operation: Operation
    created: bool


@dataclass(frozen=True)
class _Run:
    """A checked run: the operation to store and the job to queue."""

    new: NewOperation
    input: dict[str, Any]
    timeout: float


class Submitter:
    """Checks runs, stores their operations and queues their jobs, all or nothing."""

    def __init__(self, settings: Settings, store: OperationStore, dispatcher: Dispatcher,
                 webhooks: WebhookPolicy) -> None:
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self.webhooks = webhooks
        self.relay = Relay(dispatcher, TaskOutbox.of(store, settings))
        self.publisher = Publisher(self.relay)

    def submit(self, project: str, spec: JobSpec, requests: Sequence[RunRequest], *,
               batch: bool = False) -> list[Submitted]:
        """Store and queue runs of job `spec` in `project`; their operations, in order.

        Every run is checked before anything is stored: a refusal (INVALID_ARGUMENT,
        FAILED_PRECONDITION...) leaves nothing behind; with `batch`, it names the run it
        concerns as `requests[i]`, as a batch call answers. RESOURCE_EXHAUSTED when the
        project has too many operations not done; UNAVAILABLE, with nothing stored, when
        the broker cannot take the jobs.
        """
        runs = []
        for index, request in enumerate(requests):
            try:
                runs.append(self._check(project, spec, request))
            except OperationError as exc:
                if not batch:
                    raise
                raise _at_index(index, exc) from None
        if self.dispatcher.shares_store:
            results = self._store_and_queue(project, spec, runs)
        else:
            results = self._store_then_publish(project, spec, runs)
        created = [result.operation.name for result in results if result.created]
        if not batch:
            for name in created:
                log.info("queued %s", name, extra={"operation": name, "job": spec.name})
        elif created:
            log.info("queued %d operations in project %s", len(created), project,
                     extra={"job": spec.name})
        return results

    def _check(self, project: str, spec: JobSpec, request: RunRequest) -> _Run:
        """One run checked against its job type and the limits; nothing is stored yet."""
        check_run_limits(request.input, request.labels, self.settings)
        spec.load_input(request.input)
        timeout = _timeout(spec, request.timeout)
        if request.notify is not None:
            self.webhooks.check_url(request.notify[0])
            self.webhooks.secret(project)  # refuse now what could not be signed later
        return _Run(NewOperation(new_operation_id(), dict(request.labels), request.request_id,
                                 request.notify), request.input, timeout)

    def _store_and_queue(self, project: str, spec: JobSpec,
                         runs: list[_Run]) -> list[Submitted]:
        """The broker is the store's Redis: each operation and its message in one step."""
        messages = self.dispatcher.messages(_submissions(project, spec, runs))
        return [Submitted(*result) for result in self.store.create_many(project, spec.name, [
            replace(run.new, message=Push(message.queue_key, message.payload))
            for run, message in zip(runs, messages, strict=True)])]

    def _store_then_publish(self, project: str, spec: JobSpec,
                            runs: list[_Run]) -> list[Submitted]:
        """Another broker: store the operations with their messages in the task outbox, then
        publish the new ones' jobs; if that fails, delete those operations and their entries
        again and answer UNAVAILABLE."""
        stored = now_ms()
        staged = [self.relay.outbox.entry(submission, stored)
                  for submission in _submissions(project, spec, runs)]
        results = [Submitted(*result) for result in self.store.create_many(
            project, spec.name, [replace(run.new, message=push)
                                 for run, (_, push) in zip(runs, staged, strict=True)])]
        new = [entry for (entry, _), result in zip(staged, results, strict=True)
               if result.created]
        try:
            self.publisher.publish(new)
        except Exception:
            for entry in new:  # first: a message without its operation is harmless
                self.store.delete(project, entry.submission.operation_id)
            self.relay.outbox.remove(new)
            log.exception("could not queue %d operation(s) in project %s; their records were "
                          "removed", len(new), project)
            raise Unavailable("the job could not be queued and nothing was stored; retry",
                              reason="BROKER_UNAVAILABLE") from None
        return results


def check_run_limits(job_input: Any, labels: Mapping[str, str], settings: Settings) -> None:
    """INVALID_ARGUMENT naming the field if a job's input or labels are over their limits."""
    size = len(json.dumps(job_input, separators=(",", ":")).encode())
    if size > settings.max_input_bytes:
        raise InvalidArgument.for_fields(
            {"input": f"is {size} bytes of JSON; the limit is {settings.max_input_bytes}"})
    if len(labels) > settings.max_labels:
        raise InvalidArgument.for_fields(
            {"labels": f"has {len(labels)} labels; the limit is {settings.max_labels}"})


def _submissions(project: str, spec: JobSpec, runs: list[_Run]) -> list[Submission]:
    return [Submission(project, run.new.id, spec.name, run.input, run.timeout) for run in runs]


def _timeout(spec: JobSpec, requested: float | None) -> float:
    if requested is None:
        return spec.timeout
    if not 0 < requested <= spec.max_timeout:
        raise InvalidArgument.for_fields(
            {"timeout": f"must be more than 0s and at most {spec.max_timeout:g}s "
                        f"for job {spec.name}"})
    return requested


def _at_index(index: int, exc: OperationError) -> OperationError:
    """`exc`, raised for one request of a batch, saying which one (`requests[i]`)."""
    where = f"requests[{index}]"
    details = [{**detail, "fieldViolations": [
        {**violation, "field": f"{where}.{violation['field']}"}
        for violation in detail["fieldViolations"]]} if detail.get("@type") == BAD_REQUEST
        else detail for detail in exc.extra_details]
    return type(exc)(f"{where}: {exc.message}", reason=exc.reason,
                     metadata={**exc.metadata, "requestIndex": str(index)}, details=details)
