import json
from typing import Any

import fakeredis
import pytest
import redis
import redis.retry
from redis.exceptions import RedisClusterException

import core.store
from core import metrics, names, record
from core.config import Settings
from core.states import TERMINAL, Event, State
from core.store import NewOperation, OperationStore, Push, operation_store
from core.stored_ids import stored_id
from core.timestamps import now_micros


def make_operation(store: OperationStore, project: str = "demo", **kwargs: Any) -> str:
    operation_id = names.new_operation_id()
    store.create(project, operation_id, kwargs.pop("job", "demo.sleep"), **kwargs)
    return operation_id


def test_create_stores_a_pending_operation(store: OperationStore) -> None:
    operation, created = store.create("demo", names.new_operation_id(), "demo.sleep",
                                      labels={"team": "a"})
    assert created
    found = store.get("demo", operation.id)
    assert found == operation
    assert found.state is State.PENDING
    assert found.labels == {"team": "a"}
    assert not found.done


def test_same_request_id_returns_the_same_operation(store: OperationStore) -> None:
    request_id = names.new_operation_id()
    first, created = store.create("demo", names.new_operation_id(), "demo.sleep",
                                  request_id=request_id)
    again, created_again = store.create("demo", names.new_operation_id(), "demo.sleep",
                                        request_id=request_id)
    assert created
    assert not created_again
    assert again.id == first.id
    assert store.list_page("demo", 10).operations == [first]


@pytest.mark.parametrize("request_id", ["", "7d3bd6c4-8f5e-4c39-9a0e-2a43f1c7e0b1"])
def test_a_retried_create_answers_as_the_first_run_and_writes_nothing_again(
        store: OperationStore, request_id: str) -> None:
    # redis-py retries a script whose reply was lost to a dropped connection: the operation
    # and its message are then in Redis already, and must not be created or queued twice.
    new = NewOperation(names.new_operation_id(), request_id=request_id,
                       message=Push("broker:queue", "the task message"))
    [first] = store.create_many("demo", "demo.sleep", [new])
    counters = store.redis.hgetall(store.keys.metrics("demo"))
    [again] = store.create_many("demo", "demo.sleep", [new])
    assert first == again == (store.get("demo", new.id), True)
    assert store.redis.lrange("broker:queue", 0, -1) == ["the task message"]
    assert store.redis.xlen(store.keys.events("demo")) == 1
    assert store.redis.hget(store.keys.queued("demo"), "demo") == "1"
    assert store.redis.hgetall(store.keys.metrics("demo")) == counters


def test_a_retried_transition_answers_as_the_first_run_and_applies_nothing_twice(
        store: OperationStore, monkeypatch: pytest.MonkeyPatch) -> None:
    operation_id = make_operation(store)
    evalsha = store.redis.evalsha

    def lost_reply_then_retry(*args: Any) -> Any:
        evalsha(*args)  # ran, but its reply was lost: redis-py sends it again
        return evalsha(*args)

    monkeypatch.setattr(store.redis, "evalsha", lost_reply_then_retry)
    started = store.apply("demo", operation_id, Event.START, increment=(record.ATTEMPT,),
                          take_lease=0)  # a lease over at once: its worker is lost below
    assert (started.before, started.after, started.attempt) == (State.PENDING, State.RUNNING, 1)
    lost = store.apply("demo", operation_id, Event.WORKER_LOST, take_lease=0)
    assert (lost.before, lost.after) == (State.RUNNING, State.PENDING)
    again = store.apply("demo", operation_id, Event.START, increment=(record.ATTEMPT,),
                        take_lease=10)
    assert (again.before, again.after, again.attempt) == (State.PENDING, State.RUNNING, 2)
    done = store.apply("demo", operation_id, Event.SUCCEED, {record.RESPONSE: "1"})
    # A terminal write keeps no token (nothing changes a done operation): its retry is
    # refused, and the operation is done as the first run left it.
    assert (done.before, done.after) == (State.SUCCEEDED, None)
    events = [fields["event"] for _, fields in store.changes_after("demo", "0-0")]
    assert events == ["create", "start", "worker_lost", "start", "succeed"]
    assert record.CHANGE_TOKEN not in store.redis.hgetall(store.keys.operation("demo",
                                                                               operation_id))


def test_a_handed_back_run_is_queued_again_and_not_counted_as_an_attempt(
        store: OperationStore) -> None:
    operation_id = make_operation(store)
    first = store.apply("demo", operation_id, Event.START, increment=(record.ATTEMPT,),
                        take_lease=10)
    assert first.attempt == 1
    back = store.apply("demo", operation_id, Event.HAND_BACK, decrement=(record.ATTEMPT,))
    assert (back.before, back.after, back.attempt) == (State.RUNNING, State.PENDING, 0)
    assert store.redis.zscore(store.keys.leases("demo"), f"demo/{operation_id}") is None
    # The next worker takes it at once (no lease to wait out), as the same attempt.
    again = store.apply("demo", operation_id, Event.START, increment=(record.ATTEMPT,),
                        take_lease=10)
    assert (again.before, again.after, again.attempt) == (State.PENDING, State.RUNNING, 1)


def test_request_ids_are_per_project(store: OperationStore) -> None:
    request_id = names.new_operation_id()
    first, _ = store.create("one", names.new_operation_id(), "demo.sleep", request_id=request_id)
    other, created = store.create("two", names.new_operation_id(), "demo.sleep",
                                  request_id=request_id)
    assert created
    assert other.id != first.id


def test_create_times_are_unique_within_a_project(store: OperationStore,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.store.now_micros", lambda: 1_763_740_000_123_456)
    ids = [make_operation(store) for _ in range(3)]
    times = [store.get("demo", i).create_time for i in ids]  # type: ignore[union-attr]
    assert times == [1_763_740_000_123_456, 1_763_740_000_123_457, 1_763_740_000_123_458]


def test_transitions_follow_the_table(store: OperationStore) -> None:
    operation_id = make_operation(store)
    started = store.apply("demo", operation_id, Event.START, {record.WORKER: "w1"},
                          increment=(record.ATTEMPT,))
    assert (started.before, started.after) == (State.PENDING, State.RUNNING)
    store.apply("demo", operation_id, Event.PROGRESS, {record.PROGRESS_PERCENT: 40})
    done = store.apply("demo", operation_id, Event.SUCCEED, {record.RESPONSE: json.dumps([1])})
    assert done.after is State.SUCCEEDED
    found = store.get("demo", operation_id)
    assert found is not None
    assert (found.worker, found.attempt, found.progress_percent) == ("w1", 1, 40)
    assert found.response == [1]
    assert found.end_time is not None
    assert found.done


@pytest.mark.parametrize("late", [Event.FAIL, Event.SUCCEED, Event.CONFIRM_CANCEL, Event.RETRY,
                                  Event.START, Event.PROGRESS, Event.REQUEST_CANCEL])
def test_the_first_terminal_write_wins(store: OperationStore, late: Event) -> None:
    operation_id = make_operation(store)
    store.apply("demo", operation_id, Event.START)
    store.apply("demo", operation_id, Event.SUCCEED, {record.RESPONSE: "1"})
    ignored = store.apply("demo", operation_id, late, {record.ERROR: "{}"})
    assert ignored.before is State.SUCCEEDED
    assert not ignored.applied
    found = store.get("demo", operation_id)
    assert found is not None
    assert found.state is State.SUCCEEDED
    assert found.error is None


def test_done_operations_expire_after_the_retention_period(store: OperationStore) -> None:
    operation_id = make_operation(store)
    key = store.keys.operation("demo", operation_id)
    assert store.redis.ttl(key) == -1
    store.apply("demo", operation_id, Event.REQUEST_CANCEL)
    assert 0 < store.redis.ttl(key) <= store.retention_seconds  # type: ignore[operator]


def test_a_deleted_operation_is_never_written_again(store: OperationStore) -> None:
    operation_id = make_operation(store, request_id=names.new_operation_id())
    store.apply("demo", operation_id, Event.START)
    assert store.delete("demo", operation_id)
    late = store.apply("demo", operation_id, Event.PROGRESS, {record.PROGRESS_PERCENT: 50})
    assert late.before is None
    assert store.get("demo", operation_id) is None
    # Nothing of it is left but the project's change stream, which records that it went,
    # the project's counters, and the deployment's registry of projects and layout version.
    assert sorted(store.redis.keys("*")) == sorted([
        store.keys.events("demo"), store.keys.metrics("demo"), store.keys.projects(),
        store.keys.layout()])


def test_delete_of_an_unknown_operation_says_so(store: OperationStore) -> None:
    assert not store.delete("demo", names.new_operation_id())


def test_pages_run_newest_first_without_repeats_while_operations_are_added(
        store: OperationStore) -> None:
    created = [make_operation(store) for _ in range(5)]
    first = store.list_page("demo", 2)
    make_operation(store)  # a newer one must not shift the pages already being read
    second = store.list_page("demo", 2, before=first.cursor)
    third = store.list_page("demo", 2, before=second.cursor)
    seen = [op.id for page in (first, second, third) for op in page.operations]
    assert seen == created[::-1]
    assert third.cursor is None


def test_listing_skips_and_unindexes_operations_that_expired(store: OperationStore) -> None:
    kept, gone = make_operation(store), make_operation(store)
    store.redis.delete(store.keys.operation("demo", gone))
    page = store.list_page("demo", 10)
    assert [op.id for op in page.operations] == [kept]
    assert store.redis.zrange(store.keys.index("demo"), 0, -1) == [stored_id(kept)]


def _expired(store: OperationStore, operation_id: str, created: int) -> None:
    """Make an operation look created at `created` (µs) and, if it is done, expired."""
    store.redis.zadd(store.keys.index("demo"), {stored_id(operation_id): created})
    if store.state("demo", operation_id) in TERMINAL:
        store.redis.delete(store.keys.operation("demo", operation_id))


def test_a_done_operation_expires_by_itself_and_is_reaped_from_the_index(
        store: OperationStore) -> None:
    operation_id = make_operation(store)
    store.apply("demo", operation_id, Event.REQUEST_CANCEL)
    assert 0 < store.redis.ttl(store.keys.operation("demo", operation_id)) <= \
        store.retention_seconds
    _expired(store, operation_id, created=1)
    assert store.reap_expired() == 1
    assert store.redis.zcard(store.keys.index("demo")) == 0
    assert store.reap_expired() == 0


def test_the_reaper_passes_over_operations_that_live_long_at_the_old_end(
        store: OperationStore) -> None:
    running = [make_operation(store) for _ in range(2)]
    done = [make_operation(store) for _ in range(2)]
    for operation_id in done:
        store.apply("demo", operation_id, Event.REQUEST_CANCEL)
    for created, operation_id in enumerate([*running, *done], start=1):
        _expired(store, operation_id, created)
    assert store.reap_expired(limit=2) == 0  # the two still running, oldest first
    assert store.reap_expired(limit=2) == 2  # then on past them
    assert store.reap_expired(limit=2) == 0  # the end: next round from the oldest again
    store.apply("demo", running[0], Event.REQUEST_CANCEL)
    _expired(store, running[0], 1)
    assert store.reap_expired(limit=2) == 1
    assert store.redis.zrange(store.keys.index("demo"), 0, -1) == [stored_id(running[1])]


def test_an_operation_younger_than_the_retention_is_not_examined(
        store: OperationStore) -> None:
    operation_id = make_operation(store)
    store.redis.delete(store.keys.operation("demo", operation_id))
    assert store.reap_expired() == 0  # it cannot have expired yet
    assert store.redis.zcard(store.keys.index("demo")) == 1


def test_a_done_operation_keeps_no_field_its_others_imply(store: OperationStore) -> None:
    operation_id = make_operation(store)
    store.apply("demo", operation_id, Event.START, {record.START_TIME: now_micros()},
                increment=(record.ATTEMPT,), take_lease=30)
    store.apply("demo", operation_id, Event.PROGRESS, {record.PROGRESS_PERCENT: 40})
    store.apply("demo", operation_id, Event.SUCCEED, {record.PROGRESS_PERCENT: 100})
    raw = store.redis.hgetall(store.keys.operation("demo", operation_id))
    assert not {record.UPDATE_TIME, record.PROGRESS_PERCENT, record.LEASE,
                record.CHANGE_TOKEN} & set(raw)
    operation = store.get("demo", operation_id)
    assert operation is not None
    assert (operation.progress_percent, operation.update_time, operation.attempt) == \
        (100, operation.end_time, 1)


def test_every_change_is_announced_and_recorded_in_the_project_stream(
        store: OperationStore) -> None:
    pubsub = store.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.keys.changes("demo"))
    operation_id = make_operation(store)
    name = names.operation_name("demo", operation_id)
    store.apply("demo", operation_id, Event.REQUEST_CANCEL)
    store.delete("demo", operation_id)
    messages = [pubsub.get_message(timeout=1) for _ in range(4)]  # the first is the subscribe
    announced = [json.loads(m["data"]) for m in messages if m is not None]
    expected = [{"name": name, "project": "demo", "event": event, "state": state}
                for event, state in [("create", "PENDING"), ("request_cancel", "CANCELLED"),
                                     ("delete", "CANCELLED")]]
    assert announced == expected
    recorded = [fields for _, fields in store.changes_after("demo", "0-0")]
    assert recorded == [{"name": name, "event": e["event"], "state": e["state"]}
                        for e in expected]


def test_the_shared_secret_is_made_once(store: OperationStore) -> None:
    assert store.shared_secret() == store.shared_secret()
    assert len(store.shared_secret()) == 44


def test_a_filtered_page_examines_at_most_the_scan_limit(store: OperationStore) -> None:
    wanted = make_operation(store, labels={"k": "v"})
    for _ in range(30):
        make_operation(store)

    def has_label(operation: object) -> bool:
        return bool(operation.labels)  # type: ignore[attr-defined]

    first = store.list_page("demo", 5, matches=has_label, scan_limit=20)
    assert first.operations == []  # a short page: the scan stopped, the list did not end
    assert first.cursor is not None
    second = store.list_page("demo", 5, before=first.cursor, matches=has_label, scan_limit=20)
    assert [op.id for op in second.operations] == [wanted]
    assert second.cursor is None


def test_a_page_that_ends_exactly_at_the_list_end_has_no_cursor(store: OperationStore) -> None:
    for _ in range(2):
        make_operation(store)
    assert store.list_page("demo", 2).cursor is None


@pytest.mark.parametrize("patience", [0.0, 5.0])
def test_a_patient_store_retries_a_write_through_an_outage(
        store: OperationStore, monkeypatch: pytest.MonkeyPatch, patience: float) -> None:
    # Workers' stores wait out a failover; the API's answers at once (UNAVAILABLE).
    patient = OperationStore(store.redis, store.keys, store.retention_seconds,
                             outage_patience=patience)
    operation_id = make_operation(patient)
    evalsha, failures = store.redis.evalsha, [redis.ConnectionError("primary gone")] * 2
    monkeypatch.setattr(redis.retry, "sleep", lambda seconds: None)  # no real backoff here

    def unreachable_twice(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return evalsha(*args)

    monkeypatch.setattr(store.redis, "evalsha", unreachable_twice)
    if not patience:
        with pytest.raises(redis.ConnectionError):
            patient.apply("demo", operation_id, Event.START, take_lease=10)
        return
    assert patient.apply("demo", operation_id, Event.START, take_lease=10).after \
        is State.RUNNING


@pytest.mark.parametrize("patient", [False, True])
def test_a_workers_store_waits_for_the_store_to_answer_before_connecting(
        settings: Settings, redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch,
        patient: bool) -> None:
    # A cluster client reaches the cluster through the one node REDIS_URL names; when a
    # failover has just taken that node, a worker's first use of the store must wait for it
    # (or another answer) rather than fail the job it is starting. The API's does not wait.
    refusals = [RedisClusterException("Redis Cluster cannot be connected")] * 2

    def connecting(_: Settings) -> fakeredis.FakeRedis:
        if refusals:
            raise refusals.pop()
        return redis

    monkeypatch.setattr(core.store, "store_client", connecting)
    monkeypatch.setattr(core.store.time, "sleep", lambda seconds: None)  # no real waiting
    if not patient:
        with pytest.raises(RedisClusterException):
            operation_store(settings)
        return
    assert make_operation(operation_store(settings, patient=True))
    assert not refusals


def test_counters_follow_each_operation_through_its_changes(store: OperationStore) -> None:
    done, cancelled, deleted, _still_waiting = (make_operation(store) for _ in range(4))
    for operation_id in (done, deleted):
        store.apply("demo", operation_id, Event.START, {record.START_TIME: now_micros()},
                    take_lease=30)
    store.apply("demo", done, Event.SUCCEED)
    store.apply("demo", cancelled, Event.REQUEST_CANCEL)
    store.delete("demo", deleted)
    counted = metrics.read(store.redis, store.keys)
    assert counted.created == {"demo.sleep": 4}
    assert counted.finished == {("demo.sleep", "SUCCEEDED"): 1, ("demo.sleep", "CANCELLED"): 1}
    assert {key: n for key, n in counted.active.items() if n} == {("demo.sleep", "PENDING"): 1}
    assert (counted.wait["demo.sleep"].count, counted.run["demo.sleep"].count) == (2, 1)
    assert counted.run["demo.sleep"].buckets["+Inf"] == 1
