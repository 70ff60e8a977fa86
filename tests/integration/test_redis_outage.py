"""Redis going away and coming back, and done operations expiring (issue #5)."""

from __future__ import annotations

import uuid
from pathlib import Path

import requests

from core.connection import redis_client
from core.embedded_redis import EmbeddedRedis
from core.keyspace import Keys
from tests.stack import Api, Stack, eventually, open_gate, running_stack


def test_a_redis_restart_loses_no_accepted_operation_and_everything_recovers(
        tmp_path: Path) -> None:
    # Always a private, persistent Redis: this test stops and restarts it.
    server = EmbeddedRedis(tmp_path / "redis", persistent=True).start()
    stack = Stack(server.url, tmp_path)
    try:
        stack.start_web()
        stack.start_worker("r1")
        api = Api(stack.base_url, "outage")
        accepted = [api.wait(api.run("demo.sleep", {"seconds": 0})["name"]) for _ in range(3)]
        queued = api.run("demo.sleep", {"seconds": 0})  # may or may not run before the stop

        server.stop()
        answer = requests.get(f"{stack.base_url}/v1/{accepted[0]['name']}", timeout=10)
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error["status"] == "UNAVAILABLE"
        assert any(d["@type"].endswith("google.rpc.RetryInfo") for d in error["details"])
        assert answer.headers["Retry-After"] == "1"  # RetryInfo's delay, for plain HTTP
        assert requests.get(f"{stack.base_url}/readyz", timeout=10).status_code == 503
        submit = requests.post(f"{stack.base_url}/v1/projects/outage/jobs/demo.sleep:run",
                               json={"input": {"seconds": 0}}, timeout=10)
        assert submit.status_code == 503

        server.start()  # same port, same append-only file
        eventually(lambda: requests.get(f"{stack.base_url}/readyz", timeout=5).status_code
                   == 200, what="the API to recover")
        assert [api.get(op["name"]) for op in accepted] == accepted
        assert api.wait(queued["name"])["metadata"]["state"] == "SUCCEEDED"
        after = api.run("demo.sleep", {"seconds": 0})
        assert eventually(lambda: (op := api.wait(after["name"]))["done"] and op,
                          what="the worker to reconnect")["metadata"]["state"] == "SUCCEEDED"
    finally:
        stack.close()
        server.stop()


def test_a_job_running_while_redis_restarts_still_finishes_and_the_worker_survives(
        tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persistent=True).start()
    stack = Stack(server.url, tmp_path, {"OPQUEUE_LEASE_SECONDS": "2",
                                         "OPQUEUE_SUPERVISE_INTERVAL_SECONDS": "0.2"})
    try:
        stack.start_web()
        stack.start_worker("r2")
        api = Api(stack.base_url, "midflight")
        gate = uuid.uuid4().hex
        operation = api.run("test.gate", {"gate": gate})
        api.state_becomes(operation["name"], "RUNNING")
        server.stop()  # the job, its worker's broker connection and its store writes fail
        server.start()
        eventually(lambda: requests.get(f"{stack.base_url}/readyz", timeout=5).status_code
                   == 200, what="the API to recover")
        # The job either rode out the blip or failed with it and its lease brought it back;
        # either way it finishes, and the worker (which used to exit here) goes on.
        open_gate(stack, gate, times=2)
        done = eventually(lambda: (op := api.wait(operation["name"]))["done"] and op,
                          what="the job to finish")
        assert done["metadata"]["state"] == "SUCCEEDED"
        after = api.wait(api.run("demo.sleep", {"seconds": 0})["name"])
        assert after["metadata"]["state"] == "SUCCEEDED"
        assert stack.processes["r2"].poll() is None
    finally:
        stack.close()
        server.stop()


def test_done_operations_expire_and_leave_no_keys_behind(tmp_path: Path) -> None:
    with running_stack(tmp_path, workers=("x",), OPQUEUE_RETENTION_SECONDS="1",
                       OPQUEUE_SUPERVISE_INTERVAL_SECONDS="0.2") as stack:
        api = Api(stack.base_url, "churn")
        names = [api.run("demo.sleep", {"seconds": 0}, requestId=str(uuid.uuid4()),
                         labels={"batch": "one"})["name"] for _ in range(30)]
        for name in names:
            # Done, or done and already expired: on a busy machine more than the 1 s
            # retention can pass between two of these waits.
            answer = api.http.post(f"{api.base}/v1/{name}:wait", json={"timeout": "30s"},
                                   timeout=90)
            assert answer.status_code == 404 or answer.json()["done"], answer.text
        client = redis_client(stack.redis_url)

        def ours() -> set[str]:
            keys = set(client.scan_iter(match=f"{stack.prefix}:*", count=1000))
            return {key for key in keys if not key.startswith(f"{stack.prefix}:broker:")}

        # Only per-deployment keys stay: the page-token key (made on the first listing), the
        # layout version, the registry of projects and the project's counters (bounded by
        # job types, states and histogram buckets); nothing per operation, and the project's
        # change stream expires with its inactivity.
        keys = Keys(stack.prefix)
        eventually(lambda: ours() <= {keys.secret(), keys.layout(), keys.projects(),
                                      keys.metrics("churn")},
                   what="every operation key, index entry and request key to go")
        listed = requests.get(f"{stack.base_url}/v1/projects/churn/operations", timeout=10)
        assert listed.json() == {"operations": []}
        client.close()
