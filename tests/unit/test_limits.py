"""Bounded request bodies, job inputs, labels and queued operations (issue #7)."""

from __future__ import annotations

from dataclasses import replace

import fakeredis
import pytest
from flask.testing import FlaskClient

from app import create_app
from app.request_limits import json_depth
from core.config import Settings
from core.states import Event
from core.store import OperationStore
from tests.conftest import run_job
from tests.fakes import RecordingDispatcher


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("value", "depth"), [(1, 0), ({}, 1), ({"a": [1, {"b": 2}]}, 3),
                                              (nested(50), 50)])
def test_json_depth(value: object, depth: int) -> None:
    assert json_depth(value) == depth


def test_a_body_nested_too_deeply_is_refused(client: FlaskClient,
                                            dispatcher: RecordingDispatcher) -> None:
    answer = run_job(client, input={"seconds": 1, "deep": nested(40)})
    assert answer.status_code == 400
    assert answer.get_json()["error"]["details"][0]["reason"] == "JSON_TOO_DEEP"
    assert dispatcher.queued == []


def test_a_body_deeper_than_the_parser_can_take_is_refused(client: FlaskClient) -> None:
    body = b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = client.post("/v1/projects/demo/jobs/demo.sleep:run", data=body,
                         content_type="application/json")
    assert answer.status_code == 400


def test_an_oversize_job_input_is_refused(client: FlaskClient,
                                          dispatcher: RecordingDispatcher,
                                          settings: Settings) -> None:
    answer = run_job(client, input={"seconds": 1, "pad": "x" * (settings.max_input_bytes + 1)})
    # The body limit of the test settings is smaller still; either refusal is INVALID_ARGUMENT.
    assert answer.status_code == 400
    assert dispatcher.queued == []


def test_too_many_labels_are_refused(settings: Settings, redis: fakeredis.FakeRedis,
                                     dispatcher: RecordingDispatcher) -> None:
    app = create_app(replace(settings, max_labels=2, max_input_bytes=64), redis=redis,
                     dispatcher=dispatcher)  # type: ignore[arg-type]
    client = app.test_client()
    labels = run_job(client, labels={"a": "1", "b": "2", "c": "3"})
    assert labels.status_code == 400
    assert "labels" in labels.get_json()["error"]["message"]
    big = run_job(client, input={"seconds": 1, "pad": "x" * 100})
    assert big.status_code == 400
    assert "input" in big.get_json()["error"]["message"]
    assert dispatcher.queued == []


def test_a_project_at_its_queued_limit_is_refused_until_one_finishes(
        settings: Settings, redis: fakeredis.FakeRedis,
        dispatcher: RecordingDispatcher) -> None:
    app = create_app(replace(settings, max_queued_per_project=2), redis=redis,
                     dispatcher=dispatcher)  # type: ignore[arg-type]
    client = app.test_client()
    store: OperationStore = app.extensions["opqueue"].store
    first = run_job(client).get_json()["name"].rsplit("/", 1)[1]
    second = run_job(client).get_json()["name"].rsplit("/", 1)[1]
    refused = run_job(client)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["details"][0]["reason"] == "TOO_MANY_QUEUED_OPERATIONS"
    assert run_job(client, project="elsewhere").status_code == 200
    store.apply("demo", first, Event.REQUEST_CANCEL)  # one finishes
    assert run_job(client).status_code == 200
    store.delete("demo", second)  # one is forgotten before it finished
    assert run_job(client).status_code == 200
    assert run_job(client).status_code == 429
    assert len(dispatcher.queued) == 5


@pytest.mark.parametrize(("path", "headers", "reason"), [
    ("/v1/projects/demo/operations?filter=" + "a" * 4100, {}, "REQUEST_LINE_TOO_LONG"),
    ("/v1/projects/" + "é" * 1400 + "/operations", {}, "REQUEST_LINE_TOO_LONG"),
    ("/healthz", {f"X-H{n}": "v" for n in range(101)}, "REQUEST_HEADERS_TOO_LARGE"),
    ("/healthz", {"X-Big": "v" * 8190}, "REQUEST_HEADERS_TOO_LARGE"),
])
def test_a_request_head_over_its_limits_is_refused(client: FlaskClient, path: str,
                                                   headers: dict[str, str],
                                                   reason: str) -> None:
    answer = client.get(path, headers=headers)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["details"][0]["reason"] == reason


def test_a_request_head_just_within_its_limits_is_served(client: FlaskClient) -> None:
    headers = {f"X-H{n}": "v" for n in range(97)} | {"X-Big": "v" * 8180}
    assert client.get("/healthz", headers=headers).status_code == 200
