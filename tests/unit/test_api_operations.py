import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from core import record
from core.states import Event, State
from core.store import OperationStore
from tests.conftest import run_job
from tests.fakes import RecordingDispatcher


def submit(client: FlaskClient, project: str = "demo", **body: Any) -> dict[str, Any]:
    answer = run_job(client, project=project, **body)
    assert answer.status_code == 200, answer.get_json()
    operation: dict[str, Any] = answer.get_json()
    return operation


def operation_id(operation: dict[str, Any]) -> str:
    return str(operation["name"].rsplit("/", 1)[1])


def test_get_returns_what_run_returned(client: FlaskClient) -> None:
    operation = submit(client)
    assert client.get(f"/v1/{operation['name']}").get_json() == operation


@pytest.mark.parametrize("path", ["/v1/projects/demo/operations/{id}",
                                  "/v1/projects/demo/operations/not-a-uuid",
                                  "/v1/projects/demo/operations/00000000-0000-4000-8000-000000000000",
                                  "/v1/projects/Bad_Project/operations/{id}"])
def test_get_answers_alike_with_or_without_flask(client: FlaskClient, path: str) -> None:
    # A GET with a body goes through Flask's route; without, app/fast_reads.py answers.
    url = path.format(id=operation_id(submit(client)))
    fast, routed = client.get(url), client.get(url, json={})
    assert (fast.status_code, fast.get_json()) == (routed.status_code, routed.get_json())
    assert fast.headers["Content-Type"] == routed.headers["Content-Type"]


def test_a_succeeded_operation_carries_its_response(client: FlaskClient,
                                                    store: OperationStore) -> None:
    ident = operation_id(submit(client))
    store.apply("demo", ident, Event.START, increment=(record.ATTEMPT,))
    store.apply("demo", ident, Event.SUCCEED, {record.RESPONSE: '{"answer": 42}'})
    got = client.get(f"/v1/projects/demo/operations/{ident}").get_json()
    assert got["done"] is True
    assert got["response"] == {"@type": "type.googleapis.com/google.protobuf.Value",
                               "value": {"answer": 42}}
    assert "error" not in got
    assert got["metadata"]["state"] == "SUCCEEDED"
    assert got["metadata"]["endTime"].endswith("Z")


@pytest.mark.parametrize(("path", "status", "reason"), [
    (f"/v1/projects/demo/operations/{uuid.uuid4()}", 404, "OPERATION_NOT_FOUND"),
    ("/v1/projects/demo/operations/not-a-uuid", 400, "INVALID_OPERATION_ID"),
    (f"/v1/projects/Demo/operations/{uuid.uuid4()}", 400, "INVALID_PROJECT_ID"),
    (f"/v1/projects/demo/operations/{str(uuid.uuid4()).upper()}", 400, "INVALID_OPERATION_ID"),
])
def test_bad_or_unknown_names(client: FlaskClient, path: str, status: int, reason: str) -> None:
    answer = client.get(path)
    assert answer.status_code == status
    assert answer.get_json()["error"]["details"][0]["reason"] == reason


def test_the_operations_of_another_project_are_not_visible(client: FlaskClient) -> None:
    ident = operation_id(submit(client, project="alpha"))
    assert client.get(f"/v1/projects/beta/operations/{ident}").status_code == 404
    assert client.get("/v1/projects/beta/operations").get_json() == {"operations": []}


def test_list_pages_newest_first_until_the_token_runs_out(client: FlaskClient) -> None:
    names = [submit(client)["name"] for _ in range(5)]
    seen, token, pages = [], "", 0
    while True:
        query = {"pageSize": 2, **({"pageToken": token} if token else {})}
        page = client.get("/v1/projects/demo/operations", query_string=query).get_json()
        seen += [op["name"] for op in page["operations"]]
        pages += 1
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert seen == names[::-1]
    assert pages == 3


@pytest.mark.parametrize(("query", "field"), [
    ({"pageSize": -1}, "pageSize"),
    ({"pageSize": "many"}, "pageSize"),
    ({"pageToken": "forged"}, "pageToken"),
    ({"colour": "red"}, "colour"),
])
def test_bad_list_arguments(client: FlaskClient, query: dict[str, Any], field: str) -> None:
    answer = client.get("/v1/projects/demo/operations", query_string=query)
    assert answer.status_code == 400
    fields = [v["field"] for d in answer.get_json()["error"]["details"]
              if "fieldViolations" in d for v in d["fieldViolations"]]
    assert fields == [field]


def test_google_system_parameters_are_accepted(client: FlaskClient) -> None:
    answer = client.get("/v1/projects/demo/operations?$alt=json;enum-encoding=int")
    assert answer.status_code == 200


def test_page_size_is_capped_and_defaulted(client: FlaskClient,
                                           monkeypatch: pytest.MonkeyPatch,
                                           store: OperationStore) -> None:
    asked: list[int] = []
    real = store.list_page
    monkeypatch.setattr(store, "list_page",
                        lambda project, size, **kwargs: asked.append(size) or real(
                            project, size, **kwargs))
    client.get("/v1/projects/demo/operations")
    client.get("/v1/projects/demo/operations?pageSize=0")
    client.get("/v1/projects/demo/operations?pageSize=5000")
    assert asked == [50, 50, 1000]


def test_a_token_is_bound_to_its_project(client: FlaskClient) -> None:
    for _ in range(3):
        submit(client)
    token = client.get("/v1/projects/demo/operations?pageSize=1").get_json()["nextPageToken"]
    answer = client.get("/v1/projects/other/operations", query_string={"pageToken": token})
    assert answer.status_code == 400


def test_delete_forgets_without_cancelling(client: FlaskClient,
                                           dispatcher: RecordingDispatcher) -> None:
    operation = submit(client)
    assert client.delete(f"/v1/{operation['name']}").get_json() == {}
    assert client.get(f"/v1/{operation['name']}").status_code == 404
    assert client.get("/v1/projects/demo/operations").get_json() == {"operations": []}
    assert dispatcher.revoked == []
    assert client.delete(f"/v1/{operation['name']}").status_code == 404


def test_cancel_of_a_queued_operation_ends_it_at_once(client: FlaskClient,
                                                      dispatcher: RecordingDispatcher) -> None:
    operation = submit(client)
    # Google's clients send an empty body with a JSON content type.
    answer = client.post(f"/v1/{operation['name']}:cancel", data=b"",
                         content_type="application/json")
    assert answer.status_code == 200
    assert answer.get_json() == {}
    got = client.get(f"/v1/{operation['name']}").get_json()
    assert got["done"] is True
    assert got["error"]["code"] == 1
    assert got["metadata"]["state"] == "CANCELLED"
    assert got["metadata"]["requestedCancellation"] is True
    assert dispatcher.revoked == [operation_id(operation)]


def test_cancel_of_a_running_operation_asks_it_to_stop(client: FlaskClient,
                                                       store: OperationStore) -> None:
    operation = submit(client)
    store.apply("demo", operation_id(operation), Event.START)
    assert client.post(f"/v1/{operation['name']}:cancel", json={}).status_code == 200
    got = client.get(f"/v1/{operation['name']}").get_json()
    assert got["done"] is False
    assert got["metadata"]["state"] == "CANCELLING"
    assert got["metadata"]["requestedCancellation"] is True


def test_cancel_of_a_done_operation_changes_nothing(client: FlaskClient,
                                                    store: OperationStore) -> None:
    operation = submit(client)
    store.apply("demo", operation_id(operation), Event.START)
    store.apply("demo", operation_id(operation), Event.SUCCEED, {record.RESPONSE: "1"})
    before = client.get(f"/v1/{operation['name']}").get_json()
    assert client.post(f"/v1/{operation['name']}:cancel").get_json() == {}
    assert client.get(f"/v1/{operation['name']}").get_json() == before


def test_cancel_rejects_a_body_with_fields(client: FlaskClient) -> None:
    operation = submit(client)
    answer = client.post(f"/v1/{operation['name']}:cancel", json={"force": True})
    assert answer.status_code == 400


def test_cancel_of_an_unknown_operation_is_not_found(client: FlaskClient) -> None:
    answer = client.post(f"/v1/projects/demo/operations/{uuid.uuid4()}:cancel")
    assert answer.status_code == 404


def test_wait_on_a_done_operation_returns_it_at_once(client: FlaskClient) -> None:
    operation = submit(client)
    client.post(f"/v1/{operation['name']}:cancel")
    got = client.post(f"/v1/{operation['name']}:wait", json={"timeout": "30s"}).get_json()
    assert got["done"] is True


def test_wait_returns_the_current_state_when_the_timeout_passes(client: FlaskClient) -> None:
    operation = submit(client)
    got = client.post(f"/v1/{operation['name']}:wait", json={"timeout": "0.05s"}).get_json()
    assert got["done"] is False


@pytest.mark.parametrize("timeout", ["-1s", 0, 30, ["30s"]])
def test_wait_rejects_a_bad_timeout_saying_what_a_duration_is(client: FlaskClient,
                                                              timeout: Any) -> None:
    operation = submit(client)
    answer = client.post(f"/v1/{operation['name']}:wait", json={"timeout": timeout})
    assert answer.status_code == 400
    violations = answer.get_json()["error"]["details"]
    assert any(violation.get("fieldViolations") == [
        {"field": "timeout", "description": "must be a duration such as '30s'"}]
        for violation in violations), violations


def list_all(client: FlaskClient, project: str = "demo", **query: Any) -> list[str]:
    names, token = [], ""
    while True:
        page = client.get(f"/v1/projects/{project}/operations",
                          query_string={**query, **({"pageToken": token} if token else {})})
        assert page.status_code == 200, page.get_json()
        names += [op["name"] for op in page.get_json()["operations"]]
        token = page.get_json().get("nextPageToken", "")
        if not token:
            return names


def test_filters_select_by_state_job_and_labels(client: FlaskClient) -> None:
    red = submit(client, labels={"colour": "red"})
    blue = submit(client, labels={"colour": "blue"})
    failing = submit(client, job="demo.fail", input={})
    client.post(f"/v1/{blue['name']}:cancel")
    assert list_all(client, filter="metadata.labels.colour = red") == [red["name"]]
    assert list_all(client, filter="done = true") == [blue["name"]]
    assert list_all(client, filter='metadata.job = "demo.fail"') == [failing["name"]]
    assert list_all(client, filter="NOT done = true AND metadata.state = PENDING",
                    pageSize=1) == [failing["name"], red["name"]]


def test_create_time_filters_narrow_the_listing(client: FlaskClient) -> None:
    older = submit(client)
    newer = submit(client)
    cut = newer["metadata"]["createTime"]
    assert list_all(client, filter=f'metadata.createTime >= "{cut}"') == [newer["name"]]
    assert list_all(client, filter=f'metadata.createTime < "{cut}"') == [older["name"]]


def test_a_token_is_bound_to_its_filter(client: FlaskClient) -> None:
    for _ in range(3):
        submit(client)
    page = client.get("/v1/projects/demo/operations",
                      query_string={"filter": "done = false", "pageSize": 1}).get_json()
    answer = client.get("/v1/projects/demo/operations",
                        query_string={"filter": "done = true",
                                      "pageToken": page["nextPageToken"]})
    assert answer.status_code == 400
    assert "filter" in answer.get_json()["error"]["message"]


def test_a_bad_filter_says_what_is_wrong(client: FlaskClient) -> None:
    answer = client.get("/v1/projects/demo/operations", query_string={"filter": "name = x"})
    assert answer.status_code == 400
    assert "name" in answer.get_json()["error"]["message"]


def test_asking_again_does_not_extend_the_grace_period(client: FlaskClient,
                                                       store: OperationStore) -> None:
    operation = submit(client)
    ident = operation_id(operation)
    store.apply("demo", ident, Event.START)
    client.post(f"/v1/{operation['name']}:cancel")
    [(_, first_asked)] = store.cancellations([("demo", ident)])
    assert client.post(f"/v1/{operation['name']}:cancel").get_json() == {}
    assert store.cancellations([("demo", ident)]) == [(State.CANCELLING, first_asked)]


def test_filtered_paging_while_operations_are_created_neither_repeats_nor_skips(
        client: FlaskClient) -> None:
    existing = [submit(client, labels={"keep": "yes" if i % 2 else "no"})["name"]
                for i in range(9)]
    wanted = [name for i, name in enumerate(existing) if i % 2][::-1]
    query = {"filter": "metadata.labels.keep = yes", "pageSize": 1}
    seen, token = [], ""
    while True:
        page = client.get("/v1/projects/demo/operations", query_string={
            **query, **({"pageToken": token} if token else {})}).get_json()
        seen += [op["name"] for op in page["operations"]]
        submit(client, labels={"keep": "yes"})  # newer ones keep arriving between pages
        token = page.get("nextPageToken", "")
        if not token:
            break
    # Exactly the matching operations that existed at the first page, newest first, once.
    assert seen == wanted
