"""The task base class, run through Celery's tracer with `task.apply()` (no broker)."""

from typing import Any

import pytest
from marshmallow import Schema, fields

from core import names
from core.config import Settings
from core.errors import NotFound
from core.jobs import JobContext, JobRegistry
from core.operation import Operation
from core.states import Event, State
from core.store import OperationStore
from workers.celery_app import OpqueueCelery


class Nothing(Schema):
    pass


class Count(Schema):
    n = fields.Integer(required=True)


jobs = JobRegistry()


@jobs.job("t.echo", input_schema=Count)
def echo(context: JobContext, n: int) -> dict[str, Any]:
    context.progress(50, "half way", seen=n)
    return {"n": n, "attempt": context.attempt, "name": context.operation_name}


@jobs.job("t.not-found", input_schema=Nothing)
def not_found(context: JobContext) -> None:
    raise NotFound("no such thing", reason="THING_NOT_FOUND")


@jobs.job("t.crash", input_schema=Nothing)
def crash(context: JobContext) -> None:
    raise ZeroDivisionError("secret detail")


@jobs.job("t.unserialisable", input_schema=Nothing)
def unserialisable(context: JobContext) -> object:
    return object()


@jobs.job("t.cooperative", input_schema=Nothing)
def cooperative(context: JobContext) -> str:
    context.progress(10, "working")
    return "should not get here"


class Flaky(Exception):
    pass


@jobs.job("t.flaky", input_schema=Nothing, max_retries=2, retry_on=(Flaky,))
def flaky(context: JobContext) -> str:
    raise Flaky


@pytest.fixture
def celery(settings: Settings, store: OperationStore) -> OpqueueCelery:
    return OpqueueCelery(settings, store=store).register_jobs(jobs)


def run(celery: OpqueueCelery, store: OperationStore, job: str,
        job_input: dict[str, Any] | None = None, before: Event | None = None) -> Operation:
    operation_id = names.new_operation_id()
    store.create("demo", operation_id, job)
    if before is not None:
        store.apply("demo", operation_id, before)
    celery.tasks[job].apply(kwargs={"project": "demo", "input": job_input or {}},
                            task_id=operation_id)
    found = store.get("demo", operation_id)
    assert found is not None
    return found


def test_a_job_that_returns_succeeds_with_its_value(celery: OpqueueCelery,
                                                    store: OperationStore) -> None:
    operation = run(celery, store, "t.echo", {"n": 7})
    assert operation.state is State.SUCCEEDED
    assert operation.response == {"n": 7, "attempt": 1, "name": operation.name}
    assert (operation.progress_percent, operation.status_message) == (100, "half way")
    assert operation.details == {"seen": 7}
    assert operation.attempt == 1
    assert operation.start_time is not None


def test_a_job_raising_an_operation_error_fails_with_its_code(celery: OpqueueCelery,
                                                              store: OperationStore) -> None:
    operation = run(celery, store, "t.not-found")
    assert operation.state is State.FAILED
    assert operation.status is not None
    assert operation.status["code"] == 5
    assert operation.status["details"][0]["reason"] == "THING_NOT_FOUND"


def test_an_unexpected_exception_is_unknown_without_internals(celery: OpqueueCelery,
                                                              store: OperationStore) -> None:
    operation = run(celery, store, "t.crash")
    assert operation.status is not None
    assert operation.status["code"] == 2
    assert operation.status["details"][0]["reason"] == "ZERO_DIVISION_ERROR"
    assert "secret detail" not in str(operation.status)


def test_a_result_that_is_not_json_fails_the_operation(celery: OpqueueCelery,
                                                       store: OperationStore) -> None:
    operation = run(celery, store, "t.unserialisable")
    assert operation.state is State.FAILED


def test_a_cancelled_queued_job_never_runs(celery: OpqueueCelery, store: OperationStore) -> None:
    operation = run(celery, store, "t.echo", {"n": 1}, before=Event.REQUEST_CANCEL)
    assert operation.state is State.CANCELLED
    assert operation.start_time is None
    assert operation.attempt == 0


def test_a_running_job_stops_at_its_next_progress_report_after_a_cancel(
        celery: OpqueueCelery, store: OperationStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real_apply = store.apply

    def cancel_first(project: str, operation_id: str, event: Event, *args: Any,
                     **kwargs: Any) -> Any:
        if event is Event.PROGRESS:  # the caller cancels while the job is working
            real_apply(project, operation_id, Event.REQUEST_CANCEL)
        return real_apply(project, operation_id, event, *args, **kwargs)

    monkeypatch.setattr(store, "apply", cancel_first)
    operation = run(celery, store, "t.cooperative")
    assert operation.state is State.CANCELLED
    assert operation.status is not None
    assert operation.status["code"] == 1
    assert operation.response is None


def test_retries_show_in_metadata_and_the_last_error_wins(celery: OpqueueCelery,
                                                          store: OperationStore) -> None:
    operation = run(celery, store, "t.flaky")
    assert operation.state is State.FAILED
    assert operation.attempt == 3
    assert operation.status is not None
    assert operation.status["details"][0]["reason"] == "FLAKY"


def test_bad_input_that_reached_a_worker_fails_the_operation(celery: OpqueueCelery,
                                                             store: OperationStore) -> None:
    operation = run(celery, store, "t.echo", {"n": "x"})
    assert operation.state is State.FAILED
    assert operation.status is not None
    assert operation.status["code"] == 3


class Copy:
    """Stands in for the signature of a deferred delivery's copy."""

    def __init__(self, published: list[dict[str, Any]], fails: bool, **options: Any) -> None:
        self.published, self.fails, self.options = published, fails, options

    def apply_async(self) -> None:
        if self.fails:
            raise ConnectionError("broker down")
        self.published.append(self.options)


@pytest.mark.parametrize("publishing_fails", [False, True])
def test_a_delivery_of_an_operation_another_worker_holds_is_deferred_never_dropped(
        celery: OpqueueCelery, store: OperationStore, monkeypatch: pytest.MonkeyPatch,
        publishing_fails: bool) -> None:
    operation_id = names.new_operation_id()
    store.create("demo", operation_id, "t.echo")
    store.apply("demo", operation_id, Event.START, take_lease=60)  # a live worker runs it
    task, published = celery.tasks["t.echo"], []
    monkeypatch.setattr(task, "signature_from_request", lambda *_, **options: Copy(
        published, publishing_fails, **options))
    result = task.apply(kwargs={"project": "demo", "input": {"n": 1}}, task_id=operation_id)
    # Published again for when the lease runs out, else handed back to the broker: never
    # acknowledged without a copy, and the operation is left to the worker holding it.
    assert published == ([] if publishing_fails else [
        {"queue": celery.settings.queue, "countdown": 10}])
    assert result.state == ("REJECTED" if publishing_fails else "IGNORED")
    found = store.get("demo", operation_id)
    assert found is not None
    assert found.state is State.RUNNING
