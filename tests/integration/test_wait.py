"""WaitOperation against a real server: woken by completion, capped, and cheap to hold."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.stack import TOPOLOGIES, Api, Stack, eventually, open_gate

# Each test runs on one Redis and on a primary with replicas behind sentinels.
pytestmark = pytest.mark.parametrize("topology", TOPOLOGIES, indirect=True)


def test_wait_returns_once_the_operation_is_done(api: Api, stack: Stack) -> None:
    gate = uuid.uuid4().hex
    operation = api.run("test.gate", {"gate": gate})
    api.state_becomes(operation["name"], "RUNNING")
    result: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: result.update(api.wait(operation["name"], "60s")))
    waiter.start()
    open_gate(stack, gate)
    waiter.join(timeout=30)
    assert result["done"] is True
    assert result["metadata"]["state"] == "SUCCEEDED"


def test_wait_returns_the_current_state_when_its_timeout_passes(api: Api) -> None:
    operation = api.run("test.gate", {"gate": uuid.uuid4().hex})
    api.state_becomes(operation["name"], "RUNNING")
    assert api.wait(operation["name"], "0.2s")["done"] is False
    api.http.post(f"{api.base}/v1/{operation['name']}:cancel", timeout=10)


def test_a_timeout_above_the_server_maximum_is_capped(api: Api) -> None:
    # The test stack caps waits at 3 s; an uncapped hour would outlast the client's timeout.
    operation = api.run("test.gate", {"gate": uuid.uuid4().hex})
    answer = api.http.post(f"{api.base}/v1/{operation['name']}:wait",
                           json={"timeout": "3600s"}, timeout=20)
    assert answer.status_code == 200
    assert answer.json()["done"] is False
    api.http.post(f"{api.base}/v1/{operation['name']}:cancel", timeout=10)


def test_an_invalid_timeout_is_rejected(api: Api) -> None:
    operation = api.run("demo.sleep", {"seconds": 0})
    answer = api.http.post(f"{api.base}/v1/{operation['name']}:wait",
                           json={"timeout": "soon"}, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_two_hundred_concurrent_waiters_hold_no_redis_connection_each(api: Api,
                                                                      stack: Stack) -> None:
    gate = uuid.uuid4().hex
    names = [api.run("test.gate", {"gate": gate})["name"] for _ in range(20)]
    waiters = [name for name in names for _ in range(10)]
    local = threading.local()

    def wait(name: str) -> dict[str, Any]:
        if not hasattr(local, "api"):
            local.api = Api(api.base, api.project)
        return eventually(lambda: (op := local.api.wait(name, "60s"))["done"] and op)

    redis = stack.redis()
    # Connections the session's processes opened before (their pools keep them) are not
    # the waiters': count only what the waiters add.
    before = int(redis.info("clients")["connected_clients"])
    with ThreadPoolExecutor(max_workers=len(waiters)) as pool:
        futures = [pool.submit(wait, name) for name in waiters]
        eventually(lambda: stack.web_connections() >= len(waiters),
                   what="every waiter to be connected to the API")
        # Each parked waiter is a server thread, not a Redis connection.
        assert int(redis.info("clients")["connected_clients"]) - before < 100
        open_gate(stack, gate, times=len(names))
        results = [future.result(timeout=120) for future in futures]
    redis.close()
    assert len(results) == 200
    assert all(result["metadata"]["state"] == "SUCCEEDED" for result in results)
