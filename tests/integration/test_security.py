"""Issue #7 against real processes: keys over real HTTP with Google's client, and workers
that execute nothing but JSON messages of registered jobs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from google.api_core import exceptions
from google.api_core.operations_v1 import AbstractOperationsClient
from google.auth import api_key
from kombu import Connection, Exchange, Producer, Queue

import opqueue.v1.operation_metadata_pb2  # noqa: F401 - registers the metadata type
from app.api_keys import Role, new_key
from tests.stack import Api, Stack, eventually, running_stack

OWNER, OWNER_ENTRY = new_key("owner", Role.SUBMITTER, ["secure"])
OUTSIDER, OUTSIDER_ENTRY = new_key("outsider", Role.SUBMITTER, ["elsewhere"])


@pytest.fixture(scope="module")
def keyed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    keys = json.dumps({"keys": [OWNER_ENTRY, OUTSIDER_ENTRY]})
    with running_stack(tmp_path_factory.mktemp("keyed"), workers=("k1",),
                       OPQUEUE_API_KEYS=keys) as stack:
        yield stack


def google_client(stack: Stack, key: str) -> AbstractOperationsClient:
    # What a generated Google client does with ClientOptions(api_key=KEY).
    return AbstractOperationsClient(credentials=api_key.Credentials(key),
                                    client_options={"api_endpoint": stack.base_url})


def test_googles_client_works_with_an_api_key(keyed_stack: Stack) -> None:
    api = Api(keyed_stack.base_url, "secure")
    api.http.headers["Authorization"] = f"Bearer {OWNER}"
    name = api.wait(api.run("demo.sleep", {"seconds": 0})["name"])["name"]
    client = google_client(keyed_stack, OWNER)
    assert client.get_operation(name).done
    assert [op.name for op in client.list_operations("projects/secure", "")] == [name]
    # Google's REST transport picks the class from the HTTP status: 403 is Forbidden.
    with pytest.raises(exceptions.Forbidden) as refused:
        google_client(keyed_stack, OUTSIDER).get_operation(name)
    assert refused.value.reason == "PROJECT_NOT_GRANTED"
    with pytest.raises(exceptions.Unauthorized):
        google_client(keyed_stack, "opq_wrong").get_operation(name)


def test_a_request_without_a_key_is_refused_by_the_real_server(keyed_stack: Stack) -> None:
    api = Api(keyed_stack.base_url, "secure")
    answer = api.http.get(f"{api.base}/v1/projects/secure/operations", timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert api.http.get(f"{api.base}/healthz", timeout=10).status_code == 200


def test_access_logs_leave_out_query_strings(keyed_stack: Stack) -> None:
    marker = uuid.uuid4().hex
    Api(keyed_stack.base_url, "secure").http.get(
        f"{keyed_stack.base_url}/v1/projects/secure/operations?pageToken={marker}", timeout=10)
    assert "/v1/projects/secure/operations" in keyed_stack.log("web")
    assert marker not in keyed_stack.log("web")


def publish(stack: Stack, task: str, task_id: str, body: object, serializer: str) -> None:
    """A raw task message, straight onto the workers' queue, as an attacker with broker
    access could send it."""
    queue = Queue(stack.prefix, Exchange(stack.prefix), routing_key=stack.prefix)
    options = {"global_keyprefix": f"{stack.prefix}:broker:"}
    with Connection(stack.redis_url, transport_options=options) as connection:
        Producer(connection).publish(
            body, serializer=serializer, exchange=queue.exchange, routing_key=stack.prefix,
            declare=[queue], headers={"task": task, "id": task_id, "lang": "py",
                                      "argsrepr": "", "kwargsrepr": ""})


def test_workers_refuse_pickle_and_unknown_tasks_and_run_neither(stack: Stack) -> None:
    gate = uuid.uuid4().hex
    kwargs = {"project": "hostile", "input": {"gate": gate}}
    publish(stack, "test.gate", str(uuid.uuid4()), ((), kwargs, {}), "pickle")
    publish(stack, "evil.task", str(uuid.uuid4()), [[], kwargs, {}], "json")
    logs = lambda: stack.log("w1") + stack.log("w2")  # noqa: E731
    eventually(lambda: "untrusted content" in logs() or "ContentDisallowed" in logs(),
               what="the pickle message to be refused")
    eventually(lambda: "unregistered task of type 'evil.task'" in logs(),
               what="the unknown task to be refused")
    # Neither ran: the gate job would have counted its run.
    runs = stack.store().redis.get(f"{stack.prefix}:runs:{gate}")
    assert runs is None
    # And the workers are still serving.
    api = Api(stack.base_url, "after-hostile")
    assert api.wait(api.run("demo.sleep", {"seconds": 0})["name"])["metadata"]["state"] == \
        "SUCCEEDED"
