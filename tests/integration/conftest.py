"""One real deployment per test session: Redis, the HTTP server and two Celery worker nodes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_deployments import cluster_unavailable
from tests.stack import Api, Stack, rabbitmq_unavailable, rabbitmq_vhost, running_stack

# The brokers a test marked `on_each_broker(fixture)` runs on, `fixture` being a stack
# fixture that takes its broker as a parameter (`broker_env`).
BROKERS = ("redis", "rabbitmq")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


WEBHOOK_SECRET = "integration-secret"
WEBHOOK_SECRETS = json.dumps({"*": WEBHOOK_SECRET})


# A short grace period and wait cap keep the tests of both quick.
# Webhooks may reach the tests' own receivers on loopback.
# A short grace period and wait cap keep the tests of both quick. Webhooks may reach the
# tests' own receivers on loopback. Every test here is one anonymous client, and one parks
# 200 waiters at once: no caps on long requests (the keyed stack of test_security.py checks
# the default caps).
SESSION_ENV = {"OPQUEUE_CANCEL_GRACE_SECONDS": "2", "OPQUEUE_MAX_WAIT_SECONDS": "3",
               "OPQUEUE_WEBHOOK_SECRETS": WEBHOOK_SECRETS,
               "OPQUEUE_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "OPQUEUE_LOG_FORMAT": "json",
               "OPQUEUE_MAX_LONG_REQUESTS_PER_KEY": "0", "OPQUEUE_MAX_LONG_REQUESTS": "0"}


def on_each_broker(fixture: str) -> pytest.MarkDecorator:
    """Run the test once per broker, on the stack `fixture` gives for each."""
    return pytest.mark.parametrize(fixture, BROKERS, indirect=True)


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[str]:
    """The broker URL of a RabbitMQ virtual host of this session's own."""
    reason = rabbitmq_unavailable()
    if reason is not None:
        pytest.skip(f"RabbitMQ tests need a local RabbitMQ: {reason}")
    with rabbitmq_vhost() as url:
        yield url


def broker_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment that puts a stack on the broker its fixture was asked for."""
    if getattr(request, "param", "redis") == "rabbitmq":
        return {"OPQUEUE_BROKER_URL": request.getfixturevalue("rabbitmq")}
    return {}


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> str:
    """How the store is deployed: one Redis, unless a module asks for each of TOPOLOGIES
    with `pytestmark = pytest.mark.parametrize("topology", TOPOLOGIES, indirect=True)`."""
    chosen = str(getattr(request, "param", "standalone"))
    if chosen == "cluster" and (reason := cluster_unavailable()) is not None:
        pytest.skip(f"Redis Cluster tests need Redis 7: {reason}")
    return chosen


@pytest.fixture(scope="session")
def stack(topology: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The deployment most tests share, on a store of `topology`."""
    with running_stack(tmp_path_factory.mktemp(f"stack-{topology}"), topology=topology,
                       with_grpc=True, **SESSION_ENV) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def rabbitmq_stack(topology: str, tmp_path_factory: pytest.TempPathFactory,
                   rabbitmq: str) -> Iterator[Stack]:
    """The session's deployment again, on RabbitMQ."""
    with running_stack(tmp_path_factory.mktemp(f"rabbitmq-stack-{topology}"),
                       topology=topology, **SESSION_ENV,
                       OPQUEUE_BROKER_URL=rabbitmq) as deployment:
        yield deployment


@pytest.fixture(params=BROKERS)
def broker_stack(request: pytest.FixtureRequest, topology: str) -> Stack:
    """The session's deployment (on a store of `topology`) on each broker in turn: a test
    using it runs on both."""
    found: Stack = request.getfixturevalue("stack" if request.param == "redis"
                                           else "rabbitmq_stack")
    return found


def project_api(stack: Stack) -> Api:
    """A client on a project of its own, so tests never see each other's operations."""
    return Api(stack.base_url, f"p-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def api(stack: Stack) -> Api:
    """A client of the session's deployment, on a project of its own."""
    return project_api(stack)


@pytest.fixture
def broker_api(broker_stack: Stack) -> Api:
    """A client of `broker_stack`, on a project of its own."""
    return project_api(broker_stack)
