"""`Submitter.submit`, called directly (no HTTP), on both ways of queueing."""

from __future__ import annotations

import fakeredis
import pytest

from core.config import Settings
from core.errors import InvalidArgument, Unavailable
from core.jobs import JobSpec, registry
from core.store import OperationStore, operation_store
from core.webhooks import WebhookPolicy
from tests.fakes import RecordingDispatcher
from workers.submission import RunRequest, Submitter


@pytest.fixture
def store(settings: Settings, redis: fakeredis.FakeRedis) -> OperationStore:
    return operation_store(settings, redis)


@pytest.fixture
def submitter(settings: Settings, store: OperationStore,
              dispatcher: RecordingDispatcher) -> Submitter:
    return Submitter(settings, store, dispatcher,  # type: ignore[arg-type]
                     WebhookPolicy.from_settings(settings))


@pytest.fixture
def sleep() -> JobSpec:
    return registry.load_modules(("core.demo_jobs",)).get("demo.sleep")


def test_runs_are_stored_and_queued_once(submitter: Submitter, store: OperationStore,
                                         dispatcher: RecordingDispatcher,
                                         sleep: JobSpec) -> None:
    first = submitter.submit("demo", sleep, [RunRequest({"seconds": 1}, request_id="r-1"),
                                             RunRequest({"seconds": 2}, timeout=5.0)])
    again = submitter.submit("demo", sleep, [RunRequest({"seconds": 1}, request_id="r-1")])
    assert [result.created for result in first] == [True, True]
    assert again[0] == (first[0].operation, False)
    assert [(name, job_input, timeout) for name, _, job_input, timeout in dispatcher.queued] == [
        (first[0].operation.name, {"seconds": 1}, sleep.timeout),
        (first[1].operation.name, {"seconds": 2}, 5.0)]
    assert store.get("demo", first[1].operation.id) == first[1].operation


def test_a_refused_run_of_a_batch_is_named_and_nothing_is_stored(
        submitter: Submitter, store: OperationStore, dispatcher: RecordingDispatcher,
        sleep: JobSpec) -> None:
    requests = [RunRequest({"seconds": 1}), RunRequest({"seconds": -1})]
    with pytest.raises(InvalidArgument, match=r"^requests\[1\]: ") as refused:
        submitter.submit("demo", sleep, requests, batch=True)
    assert refused.value.metadata["requestIndex"] == "1"
    with pytest.raises(InvalidArgument, match=r"^invalid request: timeout"):
        submitter.submit("demo", sleep, [RunRequest({"seconds": 1}, timeout=0.0)])
    assert dispatcher.queued == []
    assert store.redis.keys(store.keys.operation("*", "*")) == []


def test_a_broker_that_refuses_after_the_store_leaves_no_operation(
        settings: Settings, store: OperationStore, sleep: JobSpec) -> None:
    broker = RecordingDispatcher(broken=True)  # publishes after storing: then deletes again
    submitter = Submitter(settings, store, broker,  # type: ignore[arg-type]
                          WebhookPolicy.from_settings(settings))
    with pytest.raises(Unavailable):
        submitter.submit("demo", sleep, [RunRequest({"seconds": 1}), RunRequest({"seconds": 2})])
    assert store.redis.keys(store.keys.operation("*", "*")) == []
    assert store.redis.keys(store.keys.index("*")) == []
