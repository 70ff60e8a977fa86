"""`POST /v1/projects/{p}/jobs/{job}:batchRun` and the store's batch create."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import fakeredis
import pytest
from flask.testing import FlaskClient

from app import create_app
from app.api_keys import Role
from app.schemas import MAX_BATCH
from core.config import Settings
from core.errors import ResourceExhausted
from core.jobs import registry
from core.store import NewOperation, OperationStore
from core.stored_ids import wire_id
from tests.fakes import RecordingDispatcher

URL = "/v1/projects/demo/jobs/demo.sleep:batchRun"


def batch(client: FlaskClient, *requests: dict[str, Any], url: str = URL) -> Any:
    return client.post(url, json={"requests": list(requests)})


def violations(body: dict[str, Any]) -> dict[str, str]:
    bad_request = [d for d in body["error"]["details"] if d["@type"].endswith("BadRequest")]
    return {v["field"]: v["description"] for v in bad_request[0]["fieldViolations"]}


def nothing_stored(store: OperationStore, dispatcher: RecordingDispatcher) -> bool:
    return dispatcher.queued == [] and store.redis.keys(store.keys.operation("*", "*")) == []


def test_operations_come_back_and_are_queued_in_request_order(
        client: FlaskClient, dispatcher: RecordingDispatcher) -> None:
    answer = batch(client, *({"input": {"seconds": n}, "labels": {"n": str(n)}}
                             for n in range(5)))
    assert answer.status_code == 200
    operations = answer.get_json()["operations"]
    assert [op["metadata"]["labels"] for op in operations] == [{"n": str(n)} for n in range(5)]
    assert all(op["metadata"]["state"] == "PENDING" and op["done"] is False
               for op in operations)
    assert len({op["name"] for op in operations}) == 5
    assert [(name, job_input) for name, _, job_input, _ in dispatcher.queued] == \
        [(op["name"], {"seconds": n}) for n, op in enumerate(operations)]
    created = [op["metadata"]["createTime"] for op in operations]
    assert created == sorted(created)
    assert len(set(created)) == 5


def test_each_operation_is_stored_as_run_would_store_it(client: FlaskClient) -> None:
    [from_batch] = batch(client, {"input": {"seconds": 1}, "labels": {"team": "ml"}}
                         ).get_json()["operations"]
    from_run = client.post("/v1/projects/demo/jobs/demo.sleep:run",
                           json={"input": {"seconds": 1}, "labels": {"team": "ml"}}).get_json()
    fetched = client.get(f"/v1/{from_batch['name']}").get_json()
    assert fetched == from_batch
    assert set(fetched["metadata"]) == set(from_run["metadata"])


def test_per_request_timeouts_reach_the_queue(client: FlaskClient,
                                              dispatcher: RecordingDispatcher) -> None:
    assert batch(client, {"input": {"seconds": 1}, "timeout": "2.5s"},
                 {"input": {"seconds": 1}}).status_code == 200
    assert [timeout for *_, timeout in dispatcher.queued] == [2.5, 3700.0]


@pytest.mark.parametrize(("requests", "field"), [
    ([{"input": {"seconds": 1}}, {"input": {"seconds": -1}}], "requests[1].input.seconds"),
    ([{"input": {"seconds": 1}}, {"input": {"seconds": 1, "extra": 1}}],
     "requests[1].input.extra"),
    ([{"input": {"seconds": 1}, "colour": "red"}], "requests[0].colour"),
    ([{"input": {"seconds": 1}, "requestId": "nope"}], "requests[0].requestId"),
    ([{"input": {"seconds": 1}}, {"input": {"seconds": 1}, "timeout": "999999s"}],
     "requests[1].timeout"),
    ([{"input": {"seconds": 1}}] * 2 + [{"input": {"seconds": 1}, "labels": {"Bad": "x"}}],
     "requests[2].labels"),
])
def test_one_bad_request_refuses_the_whole_batch_naming_its_index(
        client: FlaskClient, dispatcher: RecordingDispatcher, store: OperationStore,
        requests: list[dict[str, Any]], field: str) -> None:
    answer = batch(client, *requests)
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert any(name.startswith(field) for name in violations(body)), body
    assert nothing_stored(store, dispatcher)


def test_a_job_level_refusal_names_the_request_index(
        client: FlaskClient, dispatcher: RecordingDispatcher, store: OperationStore) -> None:
    answer = batch(client, {"input": {"seconds": 1}}, {"input": {"seconds": 1}},
                   {"input": {"seconds": -3}})
    info = answer.get_json()["error"]["details"][0]
    assert info["metadata"]["requestIndex"] == "2"
    assert answer.get_json()["error"]["message"].startswith("requests[2]: ")
    assert nothing_stored(store, dispatcher)


@pytest.mark.parametrize("body", [
    {}, {"requests": []}, {"requests": "no"}, {"requests": [{"input": {"seconds": 1}}],
                                              "extra": 1},
    {"requests": [{"input": {"seconds": 1}}] * (MAX_BATCH + 1)},
])
def test_the_batch_itself_must_hold_one_to_the_maximum_requests(
        client: FlaskClient, dispatcher: RecordingDispatcher, store: OperationStore,
        body: dict[str, Any]) -> None:
    answer = client.post(URL, json=body)
    assert answer.status_code == 400, answer.get_json()
    assert {"requests", "extra"} & set(violations(answer.get_json()))
    assert nothing_stored(store, dispatcher)


def test_a_full_batch_is_accepted(client: FlaskClient, dispatcher: RecordingDispatcher) -> None:
    answer = batch(client, *[{"input": {"seconds": 0}}] * MAX_BATCH)
    assert answer.status_code == 200
    assert len(answer.get_json()["operations"]) == len(dispatcher.queued) == MAX_BATCH


def test_input_and_label_limits_apply_per_request(
        app_with: Any, dispatcher: RecordingDispatcher) -> None:
    client, store = app_with(max_input_bytes=100, max_labels=1)
    big = batch(client, {"input": {"seconds": 1}}, {"input": {"seconds": 1, "x": "y" * 200}})
    assert "requests[1].input" in violations(big.get_json())
    labels = batch(client, {"input": {"seconds": 1}, "labels": {"a": "1", "b": "2"}})
    assert "requests[0].labels" in violations(labels.get_json())
    assert nothing_stored(store, dispatcher)


def test_a_batch_that_would_pass_the_queued_limit_is_refused_whole(
        app_with: Any, dispatcher: RecordingDispatcher) -> None:
    client, store = app_with(max_queued_per_project=5)
    assert batch(client, {"input": {"seconds": 1}}).status_code == 200
    refused = batch(client, *[{"input": {"seconds": 1}}] * 5)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["details"][0]["reason"] == "TOO_MANY_QUEUED_OPERATIONS"
    assert len(dispatcher.queued) == 1
    assert len(store.redis.keys(store.keys.operation("*", "*"))) == 1
    assert batch(client, *[{"input": {"seconds": 1}}] * 4).status_code == 200


def test_request_ids_make_each_request_idempotent(
        client: FlaskClient, dispatcher: RecordingDispatcher) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    first = batch(client, *({"input": {"seconds": 1}, "requestId": i} for i in ids[:2]))
    again = batch(client, *({"input": {"seconds": 9}, "requestId": i} for i in ids))
    names = [op["name"] for op in first.get_json()["operations"]]
    renamed = [op["name"] for op in again.get_json()["operations"]]
    assert renamed[:2] == names
    assert renamed[2] not in names
    assert len(dispatcher.queued) == 3  # the known two were not queued again


def test_a_request_id_repeated_within_a_batch_names_one_operation(
        client: FlaskClient, dispatcher: RecordingDispatcher) -> None:
    request_id = str(uuid.uuid4())
    operations = batch(client, {"input": {"seconds": 1}, "requestId": request_id},
                       {"input": {"seconds": 2}}, {"input": {"seconds": 3},
                                                   "requestId": request_id}
                       ).get_json()["operations"]
    assert operations[0] == operations[2]
    assert len(dispatcher.queued) == 2
    single = client.post("/v1/projects/demo/jobs/demo.sleep:run",
                         json={"input": {"seconds": 1}, "requestId": request_id}).get_json()
    assert single["name"] == operations[0]["name"]


def test_a_broker_failure_leaves_nothing_behind(
        client: FlaskClient, dispatcher: RecordingDispatcher, store: OperationStore) -> None:
    dispatcher.broken = True
    answer = batch(client, {"input": {"seconds": 1}}, {"input": {"seconds": 2}})
    assert answer.status_code == 503
    assert store.redis.keys(store.keys.operation("*", "*")) == []
    assert not store.redis.hget(store.keys.queued("demo"), "demo")


def test_an_unknown_job_is_not_found_and_submitting_needs_the_submitter_role(
        client: FlaskClient) -> None:
    answer = batch(client, {"input": {}}, url="/v1/projects/demo/jobs/demo.nope:batchRun")
    assert answer.status_code == 404
    view = client.application.view_functions["jobs.batch_run_jobs"]
    assert view.required_role is Role.SUBMITTER  # type: ignore[attr-defined]


def test_the_store_creates_in_one_step_with_one_stream_entry_each(
        store: OperationStore) -> None:
    ids = [str(uuid.uuid4()) for _ in range(4)]
    request_id = str(uuid.uuid4())
    made = store.create_many("demo", "demo.sleep", [
        NewOperation(ids[0]), NewOperation(ids[1], {"a": "b"}, request_id),
        NewOperation(ids[2]), NewOperation(ids[3], request_id=request_id)])
    assert [(op.id, created) for op, created in made] == \
        [(ids[0], True), (ids[1], True), (ids[2], True), (ids[1], False)]
    assert made[3][0].labels == {"a": "b"}
    scores = store.redis.zrange(store.keys.index("demo"), 0, -1, withscores=True)
    assert [wire_id(i) for i, _ in scores] == ids[:3]
    assert store.redis.hget(store.keys.queued("demo"), "demo") == "3"
    events = store.redis.xrange(store.keys.events("demo"))
    assert [fields["event"] for _, fields in events] == ["create"] * 3


def test_the_store_refuses_a_batch_past_the_limit_and_writes_nothing(
        redis: fakeredis.FakeRedis, settings: Settings) -> None:
    from core.store import operation_store

    store = operation_store(replace(settings, max_queued_per_project=3), redis)
    store.create_many("demo", "demo.sleep", [NewOperation(str(uuid.uuid4()))] * 1)
    with pytest.raises(ResourceExhausted):
        store.create_many("demo", "demo.sleep",
                          [NewOperation(str(uuid.uuid4())) for _ in range(3)])
    assert store.redis.zcard(store.keys.index("demo")) == 1


@pytest.fixture
def app_with(settings: Settings, redis: fakeredis.FakeRedis,
             dispatcher: RecordingDispatcher) -> Any:
    """A client and store of an app whose settings differ from the default fixture's."""
    def build(**changes: Any) -> tuple[FlaskClient, OperationStore]:
        app = create_app(replace(settings, **changes), redis=redis,
                         dispatcher=dispatcher,  # type: ignore[arg-type]
                         registry=registry.load_modules(settings.job_modules))
        return app.test_client(), app.extensions["opqueue"].store
    return build
