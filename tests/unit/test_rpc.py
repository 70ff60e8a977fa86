"""The gRPC server in process, against the same app the REST tests use: same answers, same
errors (as gRPC statuses with their details), same page tokens, same auth."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from core.config import Settings
from opqueue.v1 import jobs_pb2, jobs_pb2_grpc
from rpc.server import start
from rpc.transcoder import peer_address
from tests.keys import SECRET
from tests.stack import eventually

PROJECT = "projects/demo"


def serve(app: Flask, settings: Settings) -> Iterator[grpc.Channel]:
    """A gRPC server for `app` on a free loopback port, and a channel to it."""
    server = start(replace(settings, grpc_port=0), app)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield channel
    channel.close()
    server.stop(0)


@pytest.fixture
def channel(app: Flask, settings: Settings) -> Iterator[grpc.Channel]:
    yield from serve(app, settings)


@pytest.fixture
def operations(channel: grpc.Channel) -> operations_pb2_grpc.OperationsStub:
    return operations_pb2_grpc.OperationsStub(channel)


@pytest.fixture
def jobs(channel: grpc.Channel) -> jobs_pb2_grpc.JobsStub:
    return jobs_pb2_grpc.JobsStub(channel)


def run(jobs: jobs_pb2_grpc.JobsStub, seconds: float = 1,
        metadata: tuple[tuple[str, str], ...] = (), pad: str = "", **fields: object,
        ) -> operations_pb2.Operation:
    """RunJob of `demo.sleep` in project demo."""
    request = jobs_pb2.RunJobRequest(parent=PROJECT, job="demo.sleep", **fields)
    request.input.update({"seconds": seconds, **({"pad": pad} if pad else {})})
    answer: operations_pb2.Operation = jobs.RunJob(request, metadata=metadata)
    return answer


def failure(call: grpc.RpcError) -> tuple[grpc.StatusCode, list[object]]:
    """A failed call's code and its `google.rpc.Status` details, unpacked."""
    status = rpc_status.from_call(call)  # type: ignore[arg-type]
    assert status is not None
    unpacked: list[object] = []
    for packed in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if packed.Is(kind.DESCRIPTOR):
                detail = kind()
                packed.Unpack(detail)
                unpacked.append(detail)
    return call.code(), unpacked


def test_answers_are_the_rest_answers(client: FlaskClient, jobs: jobs_pb2_grpc.JobsStub,
                                      operations: operations_pb2_grpc.OperationsStub) -> None:
    request_id = str(uuid.uuid4())
    created = run(jobs, labels={"team": "data"}, request_id=request_id)
    assert run(jobs, seconds=5, request_id=request_id).name == created.name  # idempotent
    got = operations.GetOperation(operations_pb2.GetOperationRequest(name=created.name))
    # Compared as JSON (a packed map has no fixed byte order); proto3 JSON omits done=false.
    assert {"done": False, **json_format.MessageToDict(got)} == client.get(
        f"/v1/{created.name}").get_json()
    described = jobs.GetJob(jobs_pb2.GetJobRequest(job="demo.sleep"))
    assert described == json_format.ParseDict(client.get("/v1/jobs/demo.sleep").get_json(),
                                              jobs_pb2.Job())
    batch = jobs_pb2.BatchRunJobsRequest(parent=PROJECT, job="demo.sleep",
                                         requests=[jobs_pb2.RunJobRequest()] * 2)
    for each in batch.requests:
        each.input.update({"seconds": 1})
    assert len(jobs.BatchRunJobs(batch).operations) == 2
    operations.CancelOperation(operations_pb2.CancelOperationRequest(name=created.name))
    operations.DeleteOperation(operations_pb2.DeleteOperationRequest(name=created.name))
    assert client.get(f"/v1/{created.name}").status_code == 404


def test_page_tokens_work_across_transports(
        client: FlaskClient, jobs: jobs_pb2_grpc.JobsStub,
        operations: operations_pb2_grpc.OperationsStub) -> None:
    names = [run(jobs, seconds=n).name for n in (1, 2, 3)]
    query = "filter=metadata.job%3D%22demo.sleep%22&pageSize=2"
    first = client.get(f"/v1/{PROJECT}/operations?{query}").get_json()
    rest = operations.ListOperations(operations_pb2.ListOperationsRequest(
        name=PROJECT, filter='metadata.job="demo.sleep"', page_size=2,
        page_token=first["nextPageToken"]))
    assert [op.name for op in rest.operations] == [names[0]]
    assert not rest.next_page_token
    head = operations.ListOperations(operations_pb2.ListOperationsRequest(
        name=PROJECT, filter='metadata.job="demo.sleep"', page_size=2))
    assert [op.name for op in head.operations] == names[:0:-1]
    tail = client.get(f"/v1/{PROJECT}/operations?{query}&pageToken={head.next_page_token}")
    assert [op["name"] for op in tail.get_json()["operations"]] == [names[0]]


def test_errors_are_statuses_with_details(jobs: jobs_pb2_grpc.JobsStub,
                                          operations: operations_pb2_grpc.OperationsStub
                                          ) -> None:
    missing = f"{PROJECT}/operations/{uuid.uuid4()}"
    with pytest.raises(grpc.RpcError) as caught:
        operations.GetOperation(operations_pb2.GetOperationRequest(name=missing))
    code, [info] = failure(caught.value)
    assert code is grpc.StatusCode.NOT_FOUND
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "OPERATION_NOT_FOUND", "opqueue", {"name": missing})

    with pytest.raises(grpc.RpcError) as caught:
        run(jobs, seconds=-1)
    code, [_, bad_request] = failure(caught.value)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    assert [v.field for v in bad_request.field_violations] == ["input.seconds"]

    with pytest.raises(grpc.RpcError) as caught:
        operations.GetOperation(operations_pb2.GetOperationRequest(name=f"operations/{uuid.uuid4()}"))
    code, [_, bad_request] = failure(caught.value)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in bad_request.field_violations] == ["name"]


def test_the_http_body_limit_holds(jobs: jobs_pb2_grpc.JobsStub, settings: Settings) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        run(jobs, pad="x" * settings.max_request_bytes)
    code, [info] = failure(caught.value)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "REQUEST_TOO_LARGE"


def test_wait_wakes_on_the_change(app: Flask, jobs: jobs_pb2_grpc.JobsStub,
                                  operations: operations_pb2_grpc.OperationsStub) -> None:
    name = run(jobs).name
    waiting = operations.WaitOperation.future(operations_pb2.WaitOperationRequest(name=name))
    listener = app.extensions["opqueue"].changes
    eventually(lambda: name in listener._waiting, what="the wait to be parked")
    operations.CancelOperation(operations_pb2.CancelOperationRequest(name=name))
    waited = waiting.result(timeout=10)
    assert (waited.done, waited.error.code) == (True, code_pb2.CANCELLED)


def test_wait_answers_before_the_callers_deadline(
        jobs: jobs_pb2_grpc.JobsStub, operations: operations_pb2_grpc.OperationsStub) -> None:
    name = run(jobs).name
    request = operations_pb2.WaitOperationRequest(name=name)
    request.timeout.FromSeconds(60)
    waited = operations.WaitOperation(request, timeout=1.0)
    assert (waited.name, waited.done) == (name, False)


@pytest.fixture
def keyed_channel(keyed: Flask, settings: Settings) -> Iterator[grpc.Channel]:
    yield from serve(keyed, settings)


@pytest.mark.parametrize(("metadata", "expected"), [
    ((), grpc.StatusCode.UNAUTHENTICATED),
    ((("x-goog-api-key", "opq_not-a-real-key"),), grpc.StatusCode.UNAUTHENTICATED),
    ((("authorization", f"Bearer {SECRET['viewer']}"),), grpc.StatusCode.PERMISSION_DENIED),
    ((("x-goog-api-key", SECRET["stranger"]),), grpc.StatusCode.PERMISSION_DENIED),
    ((("x-goog-api-key", SECRET["owner"]),), grpc.StatusCode.OK),
    ((("authorization", f"Bearer {SECRET['owner']}"),), grpc.StatusCode.OK),
], ids=["no-key", "bad-key", "reader", "other-project", "api-key", "bearer"])
def test_keys_travel_in_metadata(keyed_channel: grpc.Channel,
                                 metadata: tuple[tuple[str, str], ...],
                                 expected: grpc.StatusCode) -> None:
    try:
        run(jobs_pb2_grpc.JobsStub(keyed_channel), metadata=metadata)
        code = grpc.StatusCode.OK
    except grpc.RpcError as exc:
        code = exc.code()
    assert code is expected


def test_a_key_in_call_credentials_is_a_bearer_token(keyed: Flask,
                                                     settings: Settings) -> None:
    # The README's way: local channel credentials carry call credentials over loopback.
    server = start(replace(settings, grpc_port=0), keyed)
    try:
        for key, expected in ((SECRET["owner"], grpc.StatusCode.OK),
                              ("opq_not-a-real-key", grpc.StatusCode.UNAUTHENTICATED)):
            credentials = grpc.composite_channel_credentials(
                grpc.local_channel_credentials(), grpc.access_token_call_credentials(key))
            with grpc.secure_channel(f"127.0.0.1:{server.port}", credentials) as channel:
                try:
                    run(jobs_pb2_grpc.JobsStub(channel))
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code = exc.code()
            assert code is expected
    finally:
        server.stop(0)


def test_health_and_reflection(channel: grpc.Channel) -> None:
    checked = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert checked.status == health_pb2.HealthCheckResponse.SERVING
    [answer] = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    listed = {service.name for service in answer.list_services_response.service}
    assert {"google.longrunning.Operations", "opqueue.v1.Jobs", "grpc.health.v1.Health"} <= listed


@pytest.mark.parametrize(("peer", "address"), [
    ("ipv4:127.0.0.1:51234", "127.0.0.1"),
    ("ipv6:%5B::1%5D:51234", "::1"),
    ("unix:/tmp/socket", ""),
])
def test_peer_address(peer: str, address: str) -> None:
    assert peer_address(peer) == address


def test_the_request_id_is_shared_with_rest(client: FlaskClient,
                                            jobs: jobs_pb2_grpc.JobsStub) -> None:
    request_id = str(uuid.uuid4())
    over_rest = client.post("/v1/projects/demo/jobs/demo.sleep:run",
                            data=json.dumps({"input": {"seconds": 1}, "requestId": request_id}),
                            content_type="application/json").get_json()
    assert run(jobs, request_id=request_id).name == over_rest["name"]
