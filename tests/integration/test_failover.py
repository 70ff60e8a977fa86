"""The store's primary dies under load (issue #15): with OPQUEUE_STORE_MIN_REPLICAS=1,
every operation the API acknowledged survives the failover and ends exactly once, behind
sentinels and on a Redis Cluster (where the primary of the project's shard dies)."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from core.config import Settings
from core.errors import RETRY_INFO, Unavailable
from core.keyspace import Keys
from core.names import new_operation_id, operation_name
from core.states import TERMINAL, Event, State
from core.store import operation_store
from tests.stack import Api, Stack, eventually, redis_url, running_stack

SUBMITTERS = 4


@pytest.fixture(scope="module")
def replicated_stack(topology: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp(f"failover-{topology}"), topology=topology,
                       OPQUEUE_STORE_MIN_REPLICAS="1", OPQUEUE_LEASE_SECONDS="2",
                       OPQUEUE_SUPERVISE_INTERVAL_SECONDS="0.2") as stack:
        yield stack


class Submitters:
    """Threads submitting jobs until stopped, keeping what the API acknowledged."""

    def __init__(self, stack: Stack, project: str) -> None:
        self.url = f"{stack.base_url}/v1/projects/{project}/jobs/demo.sleep:run"
        self.acknowledged: list[str] = []
        self.refusals: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._submit) for _ in range(SUBMITTERS)]

    def __enter__(self) -> Submitters:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _submit(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            answer = session.post(self.url, json={"input": {"seconds": 0.05}}, timeout=30)
            if answer.status_code == 200:
                self.acknowledged.append(answer.json()["name"])
            else:
                self.refusals.append({"status": answer.status_code, **answer.json()})

    def acknowledged_at_least(self, count: int) -> bool:
        return len(self.acknowledged) >= count


@pytest.mark.parametrize("topology", ["sentinel", "cluster"], indirect=True)
def test_every_acknowledged_operation_survives_a_primary_kill_and_ends_once(
        replicated_stack: Stack) -> None:
    stack = replicated_stack
    assert stack.replicated is not None
    project = f"failover-{uuid.uuid4().hex[:8]}"
    with Submitters(stack, project) as submitters:
        eventually(lambda: submitters.acknowledged_at_least(30), timeout=60,
                   what="submissions before the failover")
        stack.replicated.kill_primary(Keys(stack.prefix).index(project))
        after_failover = len(submitters.acknowledged)
        eventually(lambda: submitters.acknowledged_at_least(after_failover + 30), timeout=60,
                   what="the API to take submissions again after the failover")

    # While the primary was gone the API said "retry", never anything else.
    for refusal in submitters.refusals:
        assert refusal["status"] == 503, refusal
        assert refusal["error"]["status"] == "UNAVAILABLE"
        assert any(detail["@type"] == RETRY_INFO for detail in refusal["error"]["details"])

    api = Api(stack.base_url, project)
    for name in submitters.acknowledged:
        done = eventually(lambda name=name: (op := api.get(name))["done"] and op, timeout=90,
                          what=f"{name} to end")
        assert done["metadata"]["state"] == "SUCCEEDED", json.dumps(done)

    # Each one ended exactly once in the surviving history of changes.
    client = stack.redis()
    entries = client.xrange(Keys(stack.prefix).events(project))
    client.close()
    endings = Counter(operation_name(project, fields["id"]) for _, fields in entries
                      if fields["state"] in {state.value for state in TERMINAL})
    # A create refused UNAVAILABLE may have been stored after all (retry it with the same
    # requestId to get the same operation): what matters is that none acknowledged is lost.
    lost = set(submitters.acknowledged) - set(endings)
    print(f"failover on {stack.settings.redis_mode}: acknowledged {len(submitters.acknowledged)}"
          f", refused (503) {len(submitters.refusals)}, lost {len(lost)}, ended once "
          f"{sum(count == 1 for count in endings.values())}, ended twice or more "
          f"{sum(count > 1 for count in endings.values())}")
    assert not lost
    assert set(endings.values()) == {1}


def test_a_write_no_replica_confirms_is_refused_by_the_api_and_logged_by_workers(
        tmp_path: Path) -> None:
    with redis_url(tmp_path) as url:  # a Redis with no replica at all
        settings = Settings(redis_url=url, key_prefix=f"opqueue-test-{uuid.uuid4().hex[:10]}",
                            store_min_replicas=1, store_replication_timeout_seconds=0.05)
        api_store, worker_store = operation_store(settings), operation_store(settings,
                                                                             patient=True)
        operation_id = new_operation_id()
        try:
            with pytest.raises(Unavailable) as refused:
                api_store.create("demo", operation_id, "demo.sleep")
            assert refused.value.reason == "STORE_REPLICAS_BEHIND"
            assert RETRY_INFO in [detail["@type"] for detail in refused.value.extra_details]
            # Refused, yet stored on the primary: a retry with its requestId finds it.
            stored = api_store.redis.exists(api_store.keys.operation("demo", operation_id))
            assert stored == 1
            # A worker goes on with its transition: the lease recovers one a failover loses.
            assert worker_store.apply("demo", operation_id, Event.START,
                                      take_lease=10).after is State.RUNNING
        finally:
            for key in api_store.redis.scan_iter(match=f"{settings.key_prefix}:*"):
                api_store.redis.delete(key)
            api_store.redis.close()
            worker_store.redis.close()
