"""A deployment whose Celery broker is not the store's Redis (`OPQUEUE_BROKER_URL`).

The API then stores each operation with its message in the task outbox and publishes the
message after (see workers/relay.py); with the broker in the store's Redis, the rest of the
suite covers the one-step way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from core.connection import redis_client
from core.embedded_redis import EmbeddedRedis
from tests.stack import Api, Stack, running_stack, submit_and_die_before_publishing


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with EmbeddedRedis(tmp_path_factory.mktemp("broker") / "redis", persistent=False) as server:
        yield server.url


@pytest.fixture(scope="module")
def separate(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("separate"), workers=("w1",),
                       OPQUEUE_BROKER_URL=broker_url) as stack:
        yield stack


def test_jobs_run_through_a_broker_of_their_own(separate: Stack, broker_url: str) -> None:
    api = Api(separate.base_url, f"b-{uuid.uuid4().hex[:12]}")
    names = [api.run("demo.sleep", {"seconds": 0})["name"] for _ in range(3)]
    assert [api.wait(name)["metadata"]["state"] for name in names] == ["SUCCEEDED"] * 3
    store, broker = redis_client(separate.redis_url), redis_client(broker_url)
    try:
        prefix = f"{separate.prefix}:broker:"
        assert list(store.scan_iter(match=f"{prefix}*")) == []
        assert list(broker.scan_iter(match=f"{prefix}*")) != []  # kombu's bindings, at least
    finally:
        store.close()
        broker.close()


def test_a_job_whose_api_process_died_before_publishing_it_still_runs(separate: Stack) -> None:
    api = Api(separate.base_url, f"b-{uuid.uuid4().hex[:12]}")
    submit_and_die_before_publishing(separate, api.project, "demo.sleep")
    [operation] = api.http.get(f"{api.base}/v1/projects/{api.project}/operations",
                               timeout=10).json()["operations"]
    done = api.wait(operation["name"])  # a worker's relay published it
    assert done["metadata"]["state"] == "SUCCEEDED"
    assert done["metadata"]["attempt"] == 1
