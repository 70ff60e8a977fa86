"""The store on a Redis Cluster (issue #15): projects spread over the shards, the sweeps
and counters that go across projects find every one, and the deployment-wide keys (rate
limits, long-request caps, the page-token secret) work as on one Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.long_requests import LongRequests
from app.rate_limiter import RateLimiter
from core import metrics
from core.config import Settings
from core.errors import ResourceExhausted
from core.states import Event
from core.store import OperationStore, operation_store
from core.stored_ids import stored_id
from tests.redis_deployments import ClusterDeployment, cluster_unavailable, shared_cluster

PROJECTS = [f"p{n}-{uuid.uuid4().hex[:6]}" for n in range(12)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterDeployment]:
    if (reason := cluster_unavailable()) is not None:
        pytest.skip(f"Redis Cluster tests need Redis 7: {reason}")
    with shared_cluster(tmp_path) as deployment:
        yield deployment


@pytest.fixture
def settings(cluster: ClusterDeployment) -> Settings:
    return Settings(redis_url=cluster.env["REDIS_URL"], redis_mode="cluster",
                    broker_url="amqp://guest:guest@127.0.0.1:5672/unused",
                    key_prefix=f"opqueue-test-{uuid.uuid4().hex[:10]}",
                    max_long_requests_per_key=1, max_long_requests=2)


@pytest.fixture
def store(settings: Settings) -> Iterator[OperationStore]:
    found = operation_store(settings)
    yield found
    for key in found.redis.scan_iter(match=f"{settings.key_prefix}:*"):
        found.redis.delete(key)
    found.redis.close()


def test_sweeps_and_counters_reach_the_projects_of_every_shard(
        cluster: ClusterDeployment, store: OperationStore) -> None:
    shards = {cluster.primary_of(store.keys.index(project)).port for project in PROJECTS}
    assert len(shards) > 1  # the projects are spread over the shards
    running = []
    for project in PROJECTS:
        operation, _ = store.create(project, str(uuid.uuid4()), "demo.sleep")
        store.apply(project, operation.id, Event.START, take_lease=0)  # lapses at once
        running.append((project, operation.id))
        done, _ = store.create(project, str(uuid.uuid4()), "demo.sleep")
        store.apply(project, done.id, Event.REQUEST_CANCEL)
        store.redis.delete(store.keys.operation(project, done.id))  # expired, created
        store.redis.zadd(store.keys.index(project), {stored_id(done.id): 1})  # long ago
    assert sorted(store.expired_leases(limit=100)) == sorted(running)
    assert store.reap_expired() == len(PROJECTS)
    assert store.renew_leases(running, 60) == len(PROJECTS)
    assert store.expired_leases() == []
    counted = metrics.read(store.redis, store.keys)
    assert counted.created == {"demo.sleep": 2 * len(PROJECTS)}
    assert counted.active[("demo.sleep", "RUNNING")] == len(PROJECTS)


def test_rate_limits_long_request_caps_and_the_page_token_secret_work_on_a_cluster(
        settings: Settings, store: OperationStore) -> None:
    limiter = RateLimiter(store.redis, store.keys)
    limiter.admit("ci-bot", 1)
    with pytest.raises(ResourceExhausted):
        limiter.admit("ci-bot", 1)
    caps = LongRequests(store.redis, store.keys, settings)
    held = caps.acquire("ci-bot")
    with pytest.raises(ResourceExhausted):
        caps.acquire("ci-bot")  # its key's cap
    other = caps.acquire("other")
    with pytest.raises(ResourceExhausted):
        caps.acquire("third")  # the deployment's cap
    caps.renew()
    caps.release(held)
    caps.release(other)
    caps.release(caps.acquire("ci-bot"))
    assert store.shared_secret() == operation_store(settings).shared_secret()
