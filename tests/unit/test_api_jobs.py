import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.store import OperationStore
from tests.conftest import run_job
from tests.fakes import RecordingDispatcher


def violations(body: dict[str, Any]) -> dict[str, str]:
    bad_request = [d for d in body["error"]["details"] if d["@type"].endswith("BadRequest")]
    return {v["field"]: v["description"] for v in bad_request[0]["fieldViolations"]}


def test_run_returns_a_pending_operation_and_queues_its_job(
        client: FlaskClient, dispatcher: RecordingDispatcher) -> None:
    answer = run_job(client, input={"seconds": 3, "steps": 6}, labels={"team": "ml"})
    assert answer.status_code == 200
    operation = answer.get_json()
    assert operation["done"] is False
    assert operation["metadata"]["state"] == "PENDING"
    assert operation["metadata"]["job"] == "demo.sleep"
    assert operation["metadata"]["labels"] == {"team": "ml"}
    assert set(operation) == {"name", "metadata", "done"}
    assert dispatcher.queued == [(operation["name"], "demo.sleep",
                                  {"seconds": 3, "steps": 6}, 3700.0)]


def test_a_submission_timeout_overrides_the_job_default(
        client: FlaskClient, dispatcher: RecordingDispatcher) -> None:
    assert run_job(client, timeout="2.5s").status_code == 200
    assert dispatcher.queued[0][3] == 2.5


@pytest.mark.parametrize(("body", "field"), [
    ({"input": {"seconds": -1}}, "input.seconds"),
    ({"input": {"seconds": "soon"}}, "input.seconds"),
    ({"input": {}}, "input.seconds"),
    ({"input": {"seconds": 1, "extra": True}}, "input.extra"),
    ({"input": [1]}, "input"),
    ({"input": {"seconds": 1}, "colour": "red"}, "colour"),
    ({"input": {"seconds": 1, "steps": 5.5}}, "input.steps"),
    ({"input": {"seconds": 1}, "requestId": "not-a-uuid"}, "requestId"),
    ({"input": {"seconds": 1}, "labels": {"Bad Key": "x"}}, "labels"),
    ({"input": {"seconds": 1}, "timeout": "ten"}, "timeout"),
    ({"input": {"seconds": 1}, "timeout": "0s"}, "timeout"),
    ({"input": {"seconds": 1}, "timeout": "999999s"}, "timeout"),
])
def test_bad_input_is_refused_and_nothing_is_stored_or_queued(
        client: FlaskClient, dispatcher: RecordingDispatcher, store: OperationStore,
        body: dict[str, Any], field: str) -> None:
    answer = client.post("/v1/projects/demo/jobs/demo.sleep:run", json=body)
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert any(name.startswith(field) for name in violations(answer.get_json())), error
    assert dispatcher.queued == []
    assert store.redis.keys(store.keys.operation("*", "*")) == []


def test_every_bad_field_gets_its_own_violation(client: FlaskClient) -> None:
    answer = run_job(client, input={"seconds": -1, "steps": 0})
    assert set(violations(answer.get_json())) == {"input.seconds", "input.steps"}


def test_the_same_request_id_returns_the_same_operation_and_queues_once(
        client: FlaskClient, dispatcher: RecordingDispatcher) -> None:
    request_id = str(uuid.uuid4())
    first = run_job(client, requestId=request_id).get_json()
    second = run_job(client, requestId=request_id).get_json()
    assert second["name"] == first["name"]
    assert len(dispatcher.queued) == 1


def test_an_unknown_job_is_not_found(client: FlaskClient) -> None:
    answer = run_job(client, job="demo.nope")
    assert answer.status_code == 404
    assert answer.get_json()["error"]["details"][0]["reason"] == "JOB_NOT_FOUND"


def test_a_broker_outage_leaves_nothing_behind(
        client: FlaskClient, dispatcher: RecordingDispatcher, store: OperationStore) -> None:
    dispatcher.broken = True
    answer = run_job(client, requestId=str(uuid.uuid4()))
    assert answer.status_code == 503
    assert answer.get_json()["error"]["status"] == "UNAVAILABLE"
    assert store.redis.keys(store.keys.operation("*", "*")) == []
    assert store.redis.keys(store.keys.request("*", "*")) == []


def test_job_types_are_described_with_their_input_schema(client: FlaskClient) -> None:
    jobs = client.get("/v1/jobs").get_json()["jobs"]
    assert [job["name"] for job in jobs] == ["demo.fail", "demo.primes", "demo.sleep"]
    sleep = client.get("/v1/jobs/demo.sleep").get_json()
    schema = sleep["inputSchema"]
    assert schema["required"] == ["seconds"]
    assert schema["properties"]["seconds"]["type"] == "number"
    assert schema["additionalProperties"] is False
    assert sleep["limits"]["timeout"] == "3700s"
    assert sleep["description"]


@pytest.mark.parametrize(("path", "status"), [("/v1/jobs/demo.nope", 404),
                                              ("/v1/jobs/Bad%20Name", 400)])
def test_unknown_or_malformed_job_names(client: FlaskClient, path: str, status: int) -> None:
    assert client.get(path).status_code == status


def test_a_whole_number_sent_as_a_double_is_accepted(client: FlaskClient,
                                                     dispatcher: RecordingDispatcher) -> None:
    # Protobuf clients send every number in a Struct as a double.
    assert run_job(client, input={"seconds": 1, "steps": 5.0}).status_code == 200
