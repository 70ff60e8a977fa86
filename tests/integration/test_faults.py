"""Faults a task backend must survive (issue #5), against real processes.

These tests run on a deployment of their own with short leases, and start the worker
nodes each one needs; `os.kill` plays the crash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from core import record
from core.connection import redis_client
from core.states import Event
from tests.integration.conftest import broker_env, on_each_broker
from tests.stack import (
    TOPOLOGIES,
    Api,
    Stack,
    drop_broker_connections,
    eventually,
    open_gate,
    rabbitmq_queue,
    running_stack,
    submit_and_die_before_publishing,
)
from workers.celery_app import OpqueueCelery

FAULT_ENV = {
    "OPQUEUE_LEASE_SECONDS": "2",
    "OPQUEUE_SUPERVISE_INTERVAL_SECONDS": "0.2",
    "OPQUEUE_CANCEL_GRACE_SECONDS": "2",
    "OPQUEUE_MAX_REDELIVERIES": "2",
}


# Lost workers are recovered the same way whatever the store's topology, and on each
# broker (RabbitMQ with the store on one Redis).
ON_EVERY_TOPOLOGY_AND_BROKER = pytest.mark.parametrize(
    ("topology", "fault_stack"),
    [(topology, "redis") for topology in TOPOLOGIES] + [("standalone", "rabbitmq")],
    indirect=True)


@pytest.fixture(scope="module", params=["redis"])
def fault_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                topology: str) -> Iterator[Stack]:
    """A deployment with short leases and no worker, on Redis unless a test asks for
    each broker (`on_each_broker`)."""
    with running_stack(tmp_path_factory.mktemp(f"faults-{topology}"), workers=(),
                       topology=topology, **FAULT_ENV, **broker_env(request)) as stack:
        yield stack


@pytest.fixture
def nodes(fault_stack: Stack) -> Iterator[list[str]]:
    """Names of worker nodes a test starts; all stopped afterwards."""
    started: list[str] = []
    yield started
    for name in started:
        if name in fault_stack.processes:
            fault_stack.stop(name, signal.SIGKILL)


def start(stack: Stack, nodes: list[str], name: str, concurrency: int = 1) -> str:
    stack.start_worker(name, concurrency)
    nodes.append(name)
    return name


@pytest.fixture
def api(fault_stack: Stack) -> Api:
    return Api(fault_stack.base_url, f"f-{uuid.uuid4().hex[:12]}")


def runs(stack: Stack, gate: str) -> int:
    client = stack.redis()
    count = int(client.get(f"{stack.prefix}:runs:{gate}") or 0)
    client.close()
    return count


def running_pid(api: Api, name: str) -> int:
    operation = eventually(lambda: (op := api.get(name))["metadata"].get("details", {})
                           .get("pid") and op, what="the job to report its pid")
    return int(operation["metadata"]["details"]["pid"])


@ON_EVERY_TOPOLOGY_AND_BROKER
def test_a_killed_pool_process_job_is_redelivered_and_completes(
        fault_stack: Stack, nodes: list[str], api: Api) -> None:
    start(fault_stack, nodes, "a", concurrency=2)
    gate = uuid.uuid4().hex
    operation = api.run("test.gate", {"gate": gate})
    first_pid = running_pid(api, operation["name"])
    os.kill(first_pid, signal.SIGKILL)
    again = eventually(lambda: (op := api.get(operation["name"]))["metadata"]["attempt"] == 2
                       and op["metadata"]["state"] == "RUNNING" and op, what="redelivery")
    assert again["done"] is False
    open_gate(fault_stack, gate)
    done = api.wait(operation["name"])
    assert done["metadata"]["state"] == "SUCCEEDED"
    assert done["response"]["value"]["pid"] != first_pid
    assert runs(fault_stack, gate) == 2


@ON_EVERY_TOPOLOGY_AND_BROKER
def test_a_job_of_a_killed_node_is_taken_over_by_another_node(
        fault_stack: Stack, nodes: list[str], api: Api) -> None:
    start(fault_stack, nodes, "doomed")
    gate = uuid.uuid4().hex
    operation = api.run("test.gate", {"gate": gate})
    running_pid(api, operation["name"])
    start(fault_stack, nodes, "rescuer")
    fault_stack.stop("doomed", signal.SIGKILL)  # the node's main process: no goodbye
    taken = eventually(lambda: (op := api.get(operation["name"]))["metadata"]["worker"]
                       .startswith("rescuer@") and op, what="another node to take the job")
    assert taken["metadata"]["attempt"] == 2
    open_gate(fault_stack, gate)
    assert api.wait(operation["name"])["metadata"]["state"] == "SUCCEEDED"


@ON_EVERY_TOPOLOGY_AND_BROKER
def test_a_job_not_safe_to_repeat_ends_aborted_when_its_worker_is_lost(
        fault_stack: Stack, nodes: list[str], api: Api) -> None:
    start(fault_stack, nodes, "b", concurrency=2)
    gate = uuid.uuid4().hex
    operation = api.run("test.gate-once", {"gate": gate})
    os.kill(running_pid(api, operation["name"]), signal.SIGKILL)
    done = api.wait(operation["name"])
    assert done["metadata"]["state"] == "FAILED"
    assert done["error"]["code"] == 10
    assert done["error"]["details"][0]["reason"] == "WORKER_LOST"
    assert runs(fault_stack, gate) == 1


@ON_EVERY_TOPOLOGY_AND_BROKER
def test_a_job_that_keeps_killing_its_worker_is_aborted_after_the_redeliveries(
        fault_stack: Stack, nodes: list[str], api: Api) -> None:
    start(fault_stack, nodes, "c", concurrency=2)
    name = api.run("test.crash", {})["name"]
    done = eventually(lambda: (op := api.wait(name))["done"] and op, timeout=60,
                      what="the crashing job to be aborted")
    assert done["error"]["code"] == 10
    assert done["metadata"]["attempt"] == 3  # the first run and two redeliveries
    # The node survived its pool processes dying and still takes jobs.
    assert api.wait(api.run("demo.sleep", {"seconds": 0})["name"])["metadata"]["state"] == \
        "SUCCEEDED"


def test_a_soft_time_limit_ends_the_job_deadline_exceeded(
        fault_stack: Stack, nodes: list[str], api: Api) -> None:
    start(fault_stack, nodes, "d")
    operation = api.run("demo.sleep", {"seconds": 30, "steps": 1}, timeout="1s")
    done = api.wait(operation["name"])
    assert done["error"]["code"] == 4
    assert done["error"]["details"][0]["reason"] == "TIME_LIMIT_EXCEEDED"


def test_a_job_ignoring_its_soft_limit_is_ended_by_the_hard_limit(
        fault_stack: Stack, nodes: list[str], api: Api) -> None:
    start(fault_stack, nodes, "e")
    operation = api.run("test.stubborn", {"gate": uuid.uuid4().hex}, timeout="1s")
    done = eventually(lambda: (op := api.wait(operation["name"]))["done"] and op,
                      what="the hard time limit")
    assert done["error"]["code"] == 4
    assert done["metadata"]["attempt"] == 1
    # The worker goes on serving (its pool replaced the killed process).
    assert api.wait(api.run("demo.sleep", {"seconds": 0})["name"])["metadata"]["state"] == \
        "SUCCEEDED"


@on_each_broker("fault_stack")
@pytest.mark.parametrize(("failures", "state", "attempts"), [(2, "SUCCEEDED", 3),
                                                             (5, "FAILED", 3)])
def test_retries_back_off_and_the_last_error_wins(
        fault_stack: Stack, nodes: list[str], api: Api, *, failures: int, state: str,
        attempts: int) -> None:
    start(fault_stack, nodes, "f")
    operation = api.run("test.flaky", {"name": uuid.uuid4().hex, "failures": failures})
    done = eventually(lambda: (op := api.wait(operation["name"]))["done"] and op,
                      what="the retries to finish")
    assert done["metadata"]["state"] == state
    assert done["metadata"]["attempt"] == attempts
    if state == "FAILED":
        assert done["error"]["details"][0]["reason"] == "FLAKY"
    else:
        assert done["metadata"]["statusMessage"].startswith("attempt 2 failed (Flaky)")


@on_each_broker("fault_stack")
def test_a_duplicate_delivery_never_runs_a_job_twice_nor_again_once_done(
        fault_stack: Stack, nodes: list[str], api: Api) -> None:
    # What a worker sees of a redelivery (after a visibility timeout or a crash) is a
    # second copy of the message with the same task id: publish exactly that.
    start(fault_stack, nodes, "g1")
    start(fault_stack, nodes, "g2")
    gate = uuid.uuid4().hex
    operation = api.run("test.gate", {"gate": gate})
    api.state_becomes(operation["name"], "RUNNING")
    celery = OpqueueCelery(fault_stack.settings)
    ident = operation["name"].rsplit("/", 1)[1]

    def duplicate() -> None:
        celery.send_task("test.gate", task_id=ident,
                         kwargs={"project": api.project, "input": {"gate": gate}})

    def logged(line: str) -> bool:
        return any(line in fault_stack.log(node) for node in ("g1", "g2"))

    duplicate()
    eventually(lambda: logged(f"deferring {operation['name']} for 2s: it is held by a live "
                              "worker"), what="the running duplicate deferred")
    open_gate(fault_stack, gate)
    done = api.wait(operation["name"])
    duplicate()
    eventually(lambda: logged(f"skipping {operation['name']}: it is SUCCEEDED"),
               what="the late duplicate refused")
    assert api.get(operation["name"]) == done
    assert done["metadata"]["attempt"] == 1
    assert runs(fault_stack, gate) == 1


@pytest.mark.parametrize("fault_stack", ["rabbitmq"], indirect=True)
def test_every_job_ends_once_when_the_broker_drops_every_connection(
        fault_stack: Stack, nodes: list[str], api: Api) -> None:
    # Four jobs running (one per pool process) and four queued when RabbitMQ closes every
    # connection of the deployment: the running jobs' messages go back on the queue while
    # their jobs go on; the workers and the API reconnect by themselves.
    start(fault_stack, nodes, "r1", concurrency=2)
    start(fault_stack, nodes, "r2", concurrency=2)
    gates = [uuid.uuid4().hex for _ in range(8)]
    names = [api.run("test.gate", {"gate": gate})["name"] for gate in gates]
    eventually(lambda: sum(api.get(name)["metadata"]["state"] == "RUNNING"
                           for name in names) == 4, what="four jobs to run")
    drop_broker_connections(fault_stack.settings.effective_broker_url)
    names.append(api.run("demo.sleep", {"seconds": 0})["name"])  # the API publishes again
    for gate in gates:
        open_gate(fault_stack, gate)
    done = [eventually(lambda n=name: (op := api.wait(n))["done"] and op, timeout=60,
                       what=f"{name} to end") for name in names]
    assert {op["metadata"]["state"] for op in done} == {"SUCCEEDED"}
    assert [op["metadata"]["attempt"] for op in done] == [1] * len(names)
    assert [runs(fault_stack, gate) for gate in gates] == [1] * len(gates)
    queue = rabbitmq_queue(fault_stack.settings.effective_broker_url, fault_stack.prefix)
    assert queue["type"] == "quorum"
    assert queue["arguments"]["x-delivery-limit"] == 20


@pytest.mark.parametrize("fault_stack", ["rabbitmq"], indirect=True)
def test_a_job_whose_api_process_died_before_publishing_it_still_runs(
        fault_stack: Stack, nodes: list[str], api: Api) -> None:
    submit_and_die_before_publishing(fault_stack, api.project, "demo.sleep")
    [operation] = api.http.get(f"{api.base}/v1/projects/{api.project}/operations",
                               timeout=10).json()["operations"]
    assert operation["metadata"]["state"] == "PENDING"
    start(fault_stack, nodes, "relay")  # its supervisor relays what the API left behind
    done = api.wait(operation["name"])
    assert done["metadata"]["state"] == "SUCCEEDED"
    assert done["metadata"]["attempt"] == 1
    assert task_outbox(fault_stack, api.project) == []


def task_outbox(stack: Stack, project: str) -> list[str]:
    """The entries of `project`'s task outbox in `stack`."""
    client = redis_client(stack.redis_url)
    try:
        return list(client.zrange(stack.store().keys.task_outbox(project), 0, -1))
    finally:
        client.close()


TAKER = """
import sys
from kombu import Connection, Consumer, Queue
from workers.transport import Channel, WorkerTransport
url, queue, moment = sys.argv[1:]

class DiesTaking(Channel):
    def _accept(self, landing, payload, message):
        print("taken", flush=True)
        sys.stdin.read()  # killed here: taken off the queue, not yet recorded as unacked

class Transport(WorkerTransport):
    Channel = DiesTaking if moment == "taking" else Channel

options = {"global_keyprefix": queue + ":broker:", "priority_steps": [0]}
with Connection(url, transport=Transport, transport_options=options) as conn:
    channel = conn.channel()
    channel.basic_qos(0, 1, False)
    Consumer(channel, [Queue(queue)],
             callbacks=[lambda body, message: print("taken", flush=True)]).consume()
    conn.drain_events(timeout=30)
    sys.stdin.read()  # killed here: holding the message, unacknowledged, its job not started
"""


def held_in(stack: Stack, name: str) -> str:
    """Where the broker keeps the message of operation `name`: one place, by the task id."""
    ident, broker = name.rsplit("/", 1)[1], f"{stack.prefix}:broker:"
    client = redis_client(stack.redis_url)
    try:
        places = {"queue": client.lrange(broker + stack.prefix, 0, -1),
                  "landing": client.lrange(f"{broker}{stack.prefix}:landing", 0, -1),
                  "unacked": client.hvals(f"{broker}unacked")}
    finally:
        client.close()
    [place] = [place for place, messages in places.items()
               if any(ident in message for message in messages)]
    return place


@pytest.mark.parametrize(("moment", "runs_before"),
                         [("taking", 0), ("holding", 0), ("holding", 1)])
def test_a_message_taken_by_a_node_that_dies_before_starting_it_is_redelivered(
        fault_stack: Stack, nodes: list[str], api: Api, moment: str, runs_before: int) -> None:
    # What a worker node does in the instants between taking a message off the queue,
    # recording it as taken, and starting its job, played by a consumer on the workers'
    # own transport that is killed at one of those instants; with `runs_before`, the job
    # had already been started once by a worker that was lost.
    operation = api.run("demo.sleep", {"seconds": 0})
    ident = operation["name"].rsplit("/", 1)[1]
    for _ in range(runs_before):
        store = fault_stack.store()
        store.apply(api.project, ident, Event.START, increment=(record.ATTEMPT,), take_lease=0)
        assert store.apply(api.project, ident, Event.WORKER_LOST, take_lease=0).applied
    command = [sys.executable, "-c", TAKER, fault_stack.redis_url, fault_stack.prefix, moment]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as taker:
        assert taker.stdout is not None
        assert taker.stdout.readline().strip() == "taken"
        taker.kill()
    assert held_in(fault_stack, operation["name"]) == \
        {"taking": "landing", "holding": "unacked"}[moment]
    assert api.get(operation["name"])["metadata"]["state"] == "PENDING"
    start(fault_stack, nodes, "h")
    done = api.wait(operation["name"])
    assert done["metadata"]["state"] == "SUCCEEDED"
    assert done["metadata"]["attempt"] == runs_before + 1
