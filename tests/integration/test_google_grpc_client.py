"""Google's own gRPC client (google-api-core's `OperationsClient` and `operation.from_gapic`),
unchanged, against the Procfile's `grpc` process of a live deployment."""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.api_core import exceptions, operation, operations_v1
from google.longrunning import operations_pb2
from google.protobuf import json_format, struct_pb2
from google.rpc import code_pb2, error_details_pb2

from opqueue.v1 import jobs_pb2, jobs_pb2_grpc
from opqueue.v1.operation_metadata_pb2 import OperationMetadata
from tests.stack import ROOT, Api, Stack

DEFAULT_PAGE_SIZE = 50  # what a ListOperations call without page_size gets


@pytest.fixture(scope="module")
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.grpc_target) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(channel: grpc.Channel) -> operations_v1.OperationsClient:
    return operations_v1.OperationsClient(channel)


@pytest.fixture(scope="module")
def jobs(channel: grpc.Channel) -> jobs_pb2_grpc.JobsStub:
    return jobs_pb2_grpc.JobsStub(channel)


def run(jobs: jobs_pb2_grpc.JobsStub, api: Api, job: str, job_input: dict[str, Any],
        **fields: Any) -> operations_pb2.Operation:
    """RunJob over gRPC in `api`'s project."""
    request = jobs_pb2.RunJobRequest(parent=f"projects/{api.project}", job=job, **fields)
    request.input.update(job_input)
    answer: operations_pb2.Operation = jobs.RunJob(request)
    return answer


def future(client: operations_v1.OperationsClient,
           started: operations_pb2.Operation) -> operation.Operation:
    """The operation as the future a generated Google client hands out."""
    return operation.from_gapic(started, client, struct_pb2.Value,
                                metadata_type=OperationMetadata)


def test_result_with_typed_metadata(api: Api, client: operations_v1.OperationsClient,
                                    jobs: jobs_pb2_grpc.JobsStub) -> None:
    job = future(client, run(jobs, api, "demo.sleep", {"seconds": 0.2, "steps": 2},
                             labels={"team": "a"}))
    value = job.result(timeout=30)
    assert json_format.MessageToDict(value) == {"slept": 0.2, "steps": 2}
    assert (job.metadata.state, job.metadata.progress_percent) == (
        OperationMetadata.SUCCEEDED, 100)
    assert dict(job.metadata.labels) == {"team": "a"}
    # The same operation as REST shows it (compared as JSON: packed maps have no byte order).
    got = client.get_operation(job.operation.name)
    assert json_format.MessageToDict(got) == api.get(job.operation.name)


@pytest.mark.parametrize(("code", "error"), [
    ("NOT_FOUND", exceptions.NotFound),
    ("FAILED_PRECONDITION", exceptions.FailedPrecondition),
])
def test_a_failed_job_raises_the_codes_exception(
        api: Api, client: operations_v1.OperationsClient, jobs: jobs_pb2_grpc.JobsStub,
        code: str, error: type[exceptions.GoogleAPICallError]) -> None:
    job = future(client, run(jobs, api, "demo.fail", {"code": code, "message": "no luck"}))
    with pytest.raises(error) as caught:
        job.result(timeout=30)
    assert (type(caught.value), caught.value.message) == (error, "no luck")
    info = error_details_pb2.ErrorInfo()
    assert caught.value.errors[0].details[0].Unpack(info)
    assert (info.reason, info.domain) == ("DEMO_FAILURE", "opqueue")
    assert job.metadata.state == OperationMetadata.FAILED


def test_cancel_then_delete(api: Api, client: operations_v1.OperationsClient,
                            jobs: jobs_pb2_grpc.JobsStub) -> None:
    started = run(jobs, api, "test.gate", {"gate": uuid.uuid4().hex})
    api.state_becomes(started.name, "RUNNING")
    job = future(client, started)
    assert job.cancel()
    with pytest.raises(exceptions.Cancelled):
        job.result(timeout=30)
    assert (job.metadata.state, job.operation.error.code) == (
        OperationMetadata.CANCELLED, code_pb2.CANCELLED)
    client.delete_operation(started.name)
    with pytest.raises(exceptions.NotFound) as caught:
        client.get_operation(started.name)
    assert caught.value.reason == "OPERATION_NOT_FOUND"  # from grpc-status-details-bin
    assert caught.value.domain == "opqueue"


def test_list_pages_through_a_filter(api: Api, client: operations_v1.OperationsClient,
                                     jobs: jobs_pb2_grpc.JobsStub) -> None:
    # The client asks for no page size, so a second page needs more than the default.
    count = DEFAULT_PAGE_SIZE + 3
    batch = jobs_pb2.BatchRunJobsRequest(parent=f"projects/{api.project}", job="demo.sleep")
    for _ in range(count):
        batch.requests.add(labels={"batch": "paged"}).input.update({"seconds": 0})
    created = [op.name for op in jobs.BatchRunJobs(batch).operations]
    run(jobs, api, "demo.fail", {"code": "ABORTED"}, labels={"batch": "paged"})
    run(jobs, api, "demo.sleep", {"seconds": 0})

    selected = 'metadata.labels.batch = "paged" AND metadata.job = "demo.sleep"'
    pages = [[op.name for op in page]
             for page in client.list_operations(f"projects/{api.project}", selected).pages]
    assert [len(page) for page in pages] == [DEFAULT_PAGE_SIZE, 3]
    assert sorted(pages[0] + pages[1]) == sorted(created)


def test_bad_requests_are_invalid_argument_naming_the_field(
        api: Api, client: operations_v1.OperationsClient, jobs: jobs_pb2_grpc.JobsStub) -> None:
    with pytest.raises(exceptions.InvalidArgument) as caught:
        list(client.list_operations(f"projects/{api.project}", "color = blue"))
    assert caught.value.reason
    with pytest.raises(grpc.RpcError) as failed:
        run(jobs, api, "demo.sleep", {"seconds": -1})
    assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    wrapped = exceptions.from_grpc_error(failed.value)
    [bad_request] = [d for d in wrapped.details
                     if isinstance(d, error_details_pb2.BadRequest)]
    assert [v.field for v in bad_request.field_violations] == ["input.seconds"]


def test_the_documented_code_runs(stack: Stack, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPQUEUE_GRPC", stack.grpc_target)
    monkeypatch.setenv("OPQUEUE_PROJECT", f"p-{uuid.uuid4().hex[:12]}")
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### gRPC from Python", 1)[1].split("\n### ", 1)[0]
    [code] = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    namespace = {"__name__": "grpc_client_doc"}
    try:
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        namespace["channel"].close()
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert ast.literal_eval(printed.pop("result")) == {"slept": 0.5, "steps": 5}
    assert printed == {"state": "SUCCEEDED", "failed": "NotFound no such thing",
                       "listed": "True", "cancelled": "True", "deleted": "OPERATION_NOT_FOUND"}
