"""One real deployment per test session: Redis, gunicorn and two Celery worker nodes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import Api, Stack, running_stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


WEBHOOK_SECRET = "integration-secret"
WEBHOOK_SECRETS = json.dumps({"*": WEBHOOK_SECRET})


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> str:
    """How the store is deployed: one Redis, unless a module asks for each of TOPOLOGIES
    with `pytestmark = pytest.mark.parametrize("topology", TOPOLOGIES, indirect=True)`."""
    return str(getattr(request, "param", "standalone"))


@pytest.fixture(scope="session")
def stack(topology: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The deployment most tests share, on a store of `topology`."""
    # A short grace period and wait cap keep the tests of both quick.
    # Webhooks may reach the tests' own receivers on loopback. Every test here is one
    # anonymous client, and one parks 200 waiters at once: no caps on long requests (the
    # keyed stack of test_security.py checks the default caps).
    with running_stack(tmp_path_factory.mktemp(f"stack-{topology}"), topology=topology,
                       with_grpc=True,
                       OPQUEUE_CANCEL_GRACE_SECONDS="2",
                       OPQUEUE_MAX_WAIT_SECONDS="3", OPQUEUE_WEBHOOK_SECRETS=WEBHOOK_SECRETS,
                       OPQUEUE_MAX_LONG_REQUESTS_PER_KEY="0", OPQUEUE_MAX_LONG_REQUESTS="0",
                       OPQUEUE_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
                       OPQUEUE_LOG_FORMAT="json") as deployment:
        yield deployment


@pytest.fixture
def api(stack: Stack) -> Api:
    """A client on a project of its own, so tests never see each other's operations."""
    return Api(stack.base_url, f"p-{uuid.uuid4().hex[:12]}")
