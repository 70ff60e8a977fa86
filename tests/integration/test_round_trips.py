"""Redis round trips per request on the default deployment (the broker is the store's
Redis): a submit is one, a GetOperation one HGETALL. Counted with MONITOR on a private
Redis that only the API (in this process) and the monitor talk to."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient

from app import create_app
from core.config import Settings
from core.connection import redis_client
from core.embedded_redis import EmbeddedRedis

MARK = "opqueue-round-trips-mark"


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False) as server:
        yield server.url


@pytest.fixture
def client(private_redis: str) -> FlaskClient:
    settings = replace(Settings.from_env({}), redis_url=private_redis,
                       key_prefix=f"rt-{uuid.uuid4().hex[:8]}",
                       insecure_allow_anonymous=True, rate_limit_per_second=0,
                       job_modules=("core.demo_jobs",))
    return create_app(settings).test_client()


def commands_during(url: str, call: Any) -> list[str]:
    """The commands clients sent to Redis while `call()` ran (each one at least a round
    trip; a pipeline's would all be one)."""
    monitor_client, marker = redis_client(url), redis_client(url)
    marker.ping()  # connected before: only its ECHO below reaches the monitor
    seen: list[str] = []
    with monitor_client.monitor() as monitor:
        call()
        marker.echo(MARK)  # once the monitor shows it, it has shown every command before
        for event in monitor.listen():
            if MARK in event["command"]:
                break
            if event["client_type"] != "lua":  # what a script runs is not a round trip
                seen.append(event["command"].split()[0])
    monitor_client.close()
    marker.close()
    return seen


def test_a_submit_is_one_round_trip(client: FlaskClient, private_redis: str) -> None:
    url = "/v1/projects/demo/jobs/demo.sleep:run"
    assert client.post(url, json={"input": {"seconds": 1}}).status_code == 200  # warm
    answers: list[Any] = []
    commands = commands_during(private_redis, lambda: answers.append(
        client.post(url, json={"input": {"seconds": 1}})))
    assert answers[0].status_code == 200
    assert commands == ["EVALSHA"]


def test_a_get_operation_is_one_hgetall(client: FlaskClient, private_redis: str) -> None:
    name = client.post("/v1/projects/demo/jobs/demo.sleep:run",
                       json={"input": {"seconds": 1}}).get_json()["name"]
    answers: list[Any] = []
    commands = commands_during(private_redis,
                               lambda: answers.append(client.get(f"/v1/{name}")))
    assert answers[0].status_code == 200
    assert commands == ["HGETALL"]
