"""Fixtures for fast unit tests: settings → fakeredis → store → app → client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from core.config import Settings
from core.jobs import registry
from core.store import OperationStore
from tests.fakes import RecordingDispatcher
from tests.redis_deployments import cluster_session


@pytest.fixture(scope="session", autouse=True)
def _session_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Where the session's one Redis Cluster lives, if a test starts it; stopped at the end."""
    with cluster_session(tmp_path_factory.mktemp("cluster")):
        yield


@pytest.fixture
def settings() -> Settings:
    # Most API tests are about something other than keys: they run without any, as a
    # developer does (tests/unit/test_auth.py covers keys and this switch).
    return Settings(key_prefix=f"t-{uuid.uuid4().hex[:8]}", max_request_bytes=64 * 1024,
                    max_wait_seconds=2.0, insecure_allow_anonymous=True)


@pytest.fixture
def redis() -> Iterator[fakeredis.FakeRedis]:
    server = fakeredis.FakeServer()  # a fresh server per test
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(params=["own-broker", "broker-in-store"])
def dispatcher(request: pytest.FixtureRequest, redis: fakeredis.FakeRedis) -> RecordingDispatcher:
    """Each API test runs against both ways of queueing: publishing after storing, and
    queueing in the store's own creating script (see workers/dispatch.py)."""
    return RecordingDispatcher(redis=redis if request.param == "broker-in-store" else None)


@pytest.fixture
def app(settings: Settings, redis: fakeredis.FakeRedis, dispatcher: RecordingDispatcher) -> Flask:
    return create_app(settings, redis=redis, dispatcher=dispatcher,  # type: ignore[arg-type]
                      registry=registry.load_modules(settings.job_modules))


@pytest.fixture
def store(app: Flask) -> OperationStore:
    """The app's own store, so a test can look at (or break) what the API uses."""
    found: OperationStore = app.extensions["opqueue"].store
    return found


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def run_job(client: FlaskClient, job: str = "demo.sleep", project: str = "demo",
            **body: Any) -> Any:
    """POST :run and return the response."""
    body.setdefault("input", {"seconds": 1})
    return client.post(f"/v1/projects/{project}/jobs/{job}:run", json=body)
