"""Cancellation against real worker processes (issue #3); the queued and running cancels
on each broker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import broker_env, on_each_broker
from tests.stack import TOPOLOGIES, Api, Stack, eventually, open_gate, running_stack

# Each test runs on one Redis and on a primary with replicas behind sentinels.
pytestmark = pytest.mark.parametrize("topology", TOPOLOGIES, indirect=True)


def cancel(api: Api, name: str) -> None:
    answer = api.http.post(f"{api.base}/v1/{name}:cancel", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {}


def assert_cancelled(operation: dict[str, object]) -> None:
    assert operation["done"] is True
    assert operation["error"]["code"] == 1  # type: ignore[index]
    assert "response" not in operation
    assert operation["metadata"]["state"] == "CANCELLED"  # type: ignore[index]


@pytest.fixture(params=["redis"])
def bare_stack(request: pytest.FixtureRequest, tmp_path: Path,
               topology: str) -> Iterator[Stack]:
    """A deployment of its own that starts with no worker at all."""
    with running_stack(tmp_path, workers=(), topology=topology,
                       **broker_env(request)) as deployment:
        yield deployment


@on_each_broker("bare_stack")
def test_a_queued_cancel_needs_no_worker_and_the_job_never_runs(bare_stack: Stack) -> None:
    api = Api(bare_stack.base_url, "queued")
    doomed = api.run("demo.sleep", {"seconds": 0})
    cancel(api, doomed["name"])
    assert_cancelled(api.get(doomed["name"]))  # at once: no worker exists yet

    # A worker that starts now never saw the revoke broadcast; it must still skip the job.
    bare_stack.start_worker("late", concurrency=1)
    api.wait(api.run("demo.sleep", {"seconds": 0})["name"])  # queued after it: it was consumed
    after = api.get(doomed["name"])
    assert_cancelled(after)
    assert "startTime" not in after["metadata"]
    assert "attempt" not in after["metadata"]


@on_each_broker("bare_stack")
def test_a_cancelled_job_already_prefetched_by_a_worker_never_runs(bare_stack: Stack) -> None:
    api = Api(bare_stack.base_url, "prefetched")
    bare_stack.start_worker("greedy", 1, "--prefetch-multiplier", "4")
    gate = uuid.uuid4().hex
    blocker = api.run("test.gate", {"gate": gate})
    api.state_becomes(blocker["name"], "RUNNING")
    doomed = api.run("demo.sleep", {"seconds": 0})
    inspect = bare_stack.worker_control().inspect(timeout=1)
    eventually(lambda: any(task["id"] in doomed["name"] for tasks in (inspect.reserved() or {})
                           .values() for task in tasks), what="the job to be prefetched")
    cancel(api, doomed["name"])
    open_gate(bare_stack, gate)
    api.wait(blocker["name"])
    api.wait(api.run("demo.sleep", {"seconds": 0})["name"])
    assert "startTime" not in api.get(doomed["name"])["metadata"]


def test_a_running_job_that_checks_stops_at_its_next_check(broker_api: Api) -> None:
    api = broker_api
    operation = api.run("test.gate", {"gate": uuid.uuid4().hex, "cooperative": True})
    api.state_becomes(operation["name"], "RUNNING")
    cancel(api, operation["name"])
    asked = api.get(operation["name"])
    if not asked["done"]:  # it may already have noticed
        assert asked["metadata"]["state"] == "CANCELLING"
    assert asked["metadata"]["requestedCancellation"] is True
    done = api.wait(operation["name"], "30s")
    assert_cancelled(done)
    assert done["metadata"]["statusMessage"] == "cancelled: the job stopped as asked"


def test_a_running_job_that_never_checks_is_terminated_after_the_grace_period(
        broker_api: Api) -> None:
    api = broker_api
    operation = api.run("test.gate", {"gate": uuid.uuid4().hex, "cooperative": False})
    api.state_becomes(operation["name"], "RUNNING")
    cancel(api, operation["name"])
    assert api.get(operation["name"])["metadata"]["state"] == "CANCELLING"
    done = eventually(lambda: (op := api.wait(operation["name"]))["done"] and op,
                      what="termination")
    assert_cancelled(done)
    assert done["metadata"]["statusMessage"].startswith("cancelled: terminated after")
    assert done["metadata"]["attempt"] == 1
    # The worker goes on taking jobs.
    assert api.wait(api.run("demo.sleep", {"seconds": 0})["name"])["metadata"]["state"] == \
        "SUCCEEDED"
    assert api.get(operation["name"]) == done  # and the cancelled one never ran again


def test_a_cancel_racing_completion_ends_in_one_terminal_state(api: Api, stack: Stack) -> None:
    rounds = 24
    gates = [uuid.uuid4().hex for _ in range(rounds)]
    names = [api.run("test.gate", {"gate": gate})["name"] for gate in gates]
    for name in names[:4]:
        api.state_becomes(name, "RUNNING")

    def race(gate: str, name: str) -> None:
        start = threading.Barrier(2)
        finish = threading.Thread(target=lambda: (start.wait(), open_gate(stack, gate)))
        finish.start()
        start.wait()
        cancel(Api(api.base, api.project), name)
        finish.join()

    racers = [threading.Thread(target=race, args=pair) for pair in zip(gates, names, strict=True)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    finished = {name: eventually(lambda n=name: (op := api.wait(n))["done"] and op)
                for name in names}
    for operation in finished.values():
        state = operation["metadata"]["state"]
        assert state in {"SUCCEEDED", "CANCELLED"}
        assert ("response" in operation) == (state == "SUCCEEDED")
        assert ("error" in operation) == (state == "CANCELLED")
    # Once every worker is past these jobs, nothing has flipped.
    for _ in range(4):
        api.wait(api.run("demo.sleep", {"seconds": 0})["name"])
    assert {name: api.get(name) for name in names} == finished
