"""Which messages held unacknowledged the supervisor puts back (workers/supervisor.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import redis

from core import names, record
from core.config import Settings
from core.states import Event
from core.store import OperationStore
from workers import supervisor
from workers.redelivery import InFlight

LEASE = 10.0


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch, store: OperationStore) -> list[InFlight]:
    """The held messages the supervisor puts back on the queue."""
    put_back: list[InFlight] = []
    monkeypatch.setattr(supervisor, "restore", lambda app, message: put_back.append(message))
    return put_back


def recover(store: OperationStore, held: list[InFlight], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "stranded", lambda app, older_than: held)
    app = SimpleNamespace(store=store, settings=Settings(lease_seconds=LEASE))
    step = supervisor.Supervisor(SimpleNamespace())
    step._store = store
    step._recover_stranded_messages(SimpleNamespace(app=app))


def pending(store: OperationStore, runs_before: int = 0, since: float = 2 * LEASE) -> str:
    """A PENDING operation, after `runs_before` lost runs, unchanged for `since` seconds."""
    operation_id = names.new_operation_id()
    store.create("demo", operation_id, "demo.sleep")
    for _ in range(runs_before):
        store.apply("demo", operation_id, Event.START, increment=(record.ATTEMPT,),
                    take_lease=0)
        store.apply("demo", operation_id, Event.WORKER_LOST, take_lease=0)
    changed = int((time.time() - since) * 1_000_000)
    store.redis.hset(store.keys.operation("demo", operation_id), record.UPDATE_TIME, changed)
    return operation_id


@pytest.mark.parametrize("runs_before", [0, 1])
def test_a_held_message_of_a_pending_operation_goes_back(
        store: OperationStore, restored: list[InFlight], monkeypatch: pytest.MonkeyPatch,
        runs_before: int) -> None:
    held = [InFlight("tag", pending(store, runs_before), "demo")]
    recover(store, held, monkeypatch)
    assert restored == held


def test_a_message_of_a_started_or_unknown_operation_stays(
        store: OperationStore, restored: list[InFlight],
        monkeypatch: pytest.MonkeyPatch) -> None:
    running = pending(store)
    store.apply("demo", running, Event.START, take_lease=LEASE)
    recover(store, [InFlight("a", running, "demo"), InFlight("b", "gone", "demo")], monkeypatch)
    assert restored == []


def test_a_message_of_an_operation_released_moments_ago_stays(
        store: OperationStore, restored: list[InFlight],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A pool process died: its worker released the operation, and Celery is about to
    # requeue the message itself. Restoring it too would deliver it twice.
    recover(store, [InFlight("a", pending(store, 1, since=0), "demo")], monkeypatch)
    assert restored == []


def test_a_retry_waiting_for_its_countdown_stays_until_a_lease_past_it(
        store: OperationStore, restored: list[InFlight],
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    waiting = InFlight("a", pending(store, 1), "demo", eta=now + 60)
    just_due = InFlight("b", pending(store, 1), "demo", eta=now - LEASE / 2)
    long_due = InFlight("c", pending(store, 1), "demo", eta=now - 2 * LEASE)
    recover(store, [waiting, just_due, long_due], monkeypatch)
    assert restored == [long_due]


def test_other_nodes_jobs_are_recovered_only_once_the_store_answered_for_a_lease(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # After a store outage every lease looks expired; live nodes first get a lease to renew.
    clock = [100.0]
    monkeypatch.setattr(supervisor, "monotonic", lambda: clock[0])
    worker = SimpleNamespace(app=SimpleNamespace(settings=Settings(lease_seconds=LEASE)))
    step = supervisor.Supervisor(SimpleNamespace())
    assert not step._store_answered_for_a_lease(worker)  # just started: wait a lease
    clock[0] += LEASE
    assert step._store_answered_for_a_lease(worker)

    class Unreachable:
        def __getattr__(self, name: str) -> Callable[..., None]:
            def call(*args: object) -> None:
                raise redis.ConnectionError("the primary is gone")
            return call

    step._store = Unreachable()  # type: ignore[assignment]
    step.tick(worker)  # a tick that cannot reach the store starts the count again
    clock[0] += 1
    assert not step._store_answered_for_a_lease(worker)
    clock[0] += LEASE
    assert step._store_answered_for_a_lease(worker)
