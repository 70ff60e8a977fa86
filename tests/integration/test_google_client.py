"""Google's own client (google-api-core's `AbstractOperationsClient` over REST, and
`operation.from_gapic`), unchanged, against a live opqueue; the README's Google client
section runs here."""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from google.api import annotations_pb2
from google.api_core import exceptions, operation, rest_helpers
from google.api_core.operations_v1 import AbstractOperationsClient, OperationsRestTransport
from google.auth.credentials import AnonymousCredentials
from google.longrunning import operations_pb2
from google.protobuf import json_format, struct_pb2
from google.rpc import code_pb2, error_details_pb2

from opqueue.v1 import jobs_pb2
from opqueue.v1.operation_metadata_pb2 import OperationMetadata
from tests.stack import Api, Stack, eventually, open_gate

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### REST from Python"
OPERATIONS = "google.longrunning.Operations."
# opqueue's routes written out, for clients whose defaults differ (see the README).
OPQUEUE_BINDINGS = {
    OPERATIONS + "ListOperations": [{"method": "get", "uri": "/v1/{name=projects/*}/operations"}],
    OPERATIONS + "GetOperation": [{"method": "get", "uri": "/v1/{name=projects/*/operations/*}"}],
    OPERATIONS + "DeleteOperation": [
        {"method": "delete", "uri": "/v1/{name=projects/*/operations/*}"}],
    OPERATIONS + "CancelOperation": [
        {"method": "post", "uri": "/v1/{name=projects/*/operations/*}:cancel", "body": "*"}],
}


def operations_client(endpoint: str, http_options: dict[str, Any] | None = None,
                      ) -> AbstractOperationsClient:
    """The client as the README builds it, optionally with pinned URL bindings."""
    if http_options is None:
        return AbstractOperationsClient(credentials=AnonymousCredentials(),
                                        client_options={"api_endpoint": endpoint})
    transport = OperationsRestTransport(host=endpoint, credentials=AnonymousCredentials(),
                                        http_options=http_options)
    return AbstractOperationsClient(transport=transport)


def future(client: AbstractOperationsClient, name: str) -> operation.Operation:
    """The operation as the future a generated Google client would hand out."""
    return operation.from_gapic(client.get_operation(name), client, struct_pb2.Value,
                                metadata_type=OperationMetadata)


@pytest.fixture(scope="module")
def client(stack: Stack) -> AbstractOperationsClient:
    return operations_client(stack.base_url)


@pytest.fixture
def sent(client: AbstractOperationsClient) -> Iterator[list[requests.PreparedRequest]]:
    """Every HTTP request `client` sends during the test, as sent."""
    seen: list[requests.PreparedRequest] = []

    def record(response: requests.Response, *_: Any, **__: Any) -> None:
        seen.append(response.request)

    hooks = client.transport._session.hooks["response"]  # the transport's requests.Session
    hooks.append(record)
    yield seen
    hooks.remove(record)


@dataclass
class Finished:
    project: str
    names: dict[str, list[str]]  # by expectation, newest first


@pytest.fixture(scope="module")
def finished(stack: Stack) -> Finished:
    """Three successes and two failures, interleaved, all done, in a project of their own."""
    api = Api(stack.base_url, f"p-{uuid.uuid4().hex[:12]}")
    runs = [("demo.sleep", {"seconds": 0}), ("demo.fail", {"code": "ABORTED"})] * 2
    names = [api.run(job, job_input)["name"] for job, job_input in [*runs, runs[0]]]
    for name in names:
        api.wait(name)
    newest = names[::-1]
    return Finished(api.project, {"all": newest, "succeeded": newest[::2],
                                  "failed": newest[1::2], "none": []})


# 1. AbstractOperationsClient: the four Operations methods over REST, plain http://.

def test_get_operation_parses_strictly_from_the_opqueue_route(
        api: Api, client: AbstractOperationsClient, sent: list[requests.PreparedRequest],
        stack: Stack) -> None:
    name = api.run("demo.sleep", {"seconds": 0, "steps": 2}, labels={"team": "a"})["name"]
    api.wait(name)
    got = client.get_operation(name)  # json_format.Parse(ignore_unknown_fields=False) inside
    assert (got.name, got.done, got.HasField("error")) == (name, True, False)
    meta, value = OperationMetadata(), struct_pb2.Value()
    assert got.metadata.Unpack(meta)
    assert (meta.job, meta.state, meta.progress_percent) == ("demo.sleep", meta.SUCCEEDED, 100)
    assert dict(meta.labels) == {"team": "a"}
    assert got.response.Unpack(value)
    assert json_format.MessageToDict(value) == {"slept": 0, "steps": 2}
    assert [(r.method, r.url) for r in sent] == [("GET", f"{stack.base_url}/v1/{name}")]


@pytest.mark.parametrize(("filter_", "expected"), [
    ("", "all"),
    ("metadata.state = SUCCEEDED", "succeeded"),
    ('done = true AND metadata.job = "demo.fail"', "failed"),
    ("done = false", "none"),
])
def test_list_operations_pages_through_a_filter(
        client: AbstractOperationsClient, sent: list[requests.PreparedRequest],
        finished: Finished, filter_: str, expected: str) -> None:
    pages = list(client.list_operations(f"projects/{finished.project}", filter_,
                                        page_size=2).pages)
    assert [op.name for page in pages for op in page.operations] == finished.names[expected]
    assert all(len(page.operations) <= 2 for page in pages)
    assert len(pages) >= (len(finished.names[expected]) + 1) // 2
    # The client turns `name` into the path and sends camelCase query parameters.
    urls = [urlsplit(request.url or "") for request in sent]
    assert {url.path for url in urls} == {f"/v1/projects/{finished.project}/operations"}
    first = {"pageSize": ["2"], **({"filter": [filter_]} if filter_ else {})}
    assert all(parse_qs(url.query).keys() - {"pageToken"} == first.keys() for url in urls)
    assert parse_qs(urls[0].query) == first


def test_cancel_operation_stops_a_running_job(
        api: Api, client: AbstractOperationsClient) -> None:
    name = api.run("test.gate", {"gate": uuid.uuid4().hex})["name"]
    api.state_becomes(name, "RUNNING")
    client.cancel_operation(name)
    api.wait(name)
    job = future(client, name)
    assert (job.operation.done, job.operation.error.code) == (True, code_pb2.CANCELLED)
    assert (job.metadata.state, job.metadata.requested_cancellation) == (
        OperationMetadata.CANCELLED, True)
    client.cancel_operation(name)  # cancelling a done operation changes nothing
    assert client.get_operation(name) == job.operation


def test_delete_operation_forgets_it(api: Api, client: AbstractOperationsClient) -> None:
    name = api.run("demo.sleep", {"seconds": 0})["name"]
    api.wait(name)
    client.delete_operation(name)
    with pytest.raises(exceptions.NotFound):
        client.get_operation(name)
    assert list(client.list_operations(f"projects/{api.project}", "")) == []


# 2. operation.from_gapic: result(), exceptions, cancellation and metadata.

def test_result_is_the_jobs_value(api: Api, client: AbstractOperationsClient) -> None:
    job = future(client, api.run("demo.sleep", {"seconds": 0.2, "steps": 2})["name"])
    value = job.result(timeout=30)
    assert isinstance(value, struct_pb2.Value)
    assert json_format.MessageToDict(value) == {"slept": 0.2, "steps": 2}
    assert (job.metadata.state, job.metadata.progress_percent) == (OperationMetadata.SUCCEEDED,
                                                                    100)
    assert not job.cancelled()


@pytest.mark.parametrize(("code", "error"), [
    ("NOT_FOUND", exceptions.NotFound),
    ("PERMISSION_DENIED", exceptions.PermissionDenied),
    ("FAILED_PRECONDITION", exceptions.FailedPrecondition),
])
def test_a_failed_job_raises_the_matching_exception(
        api: Api, client: AbstractOperationsClient, code: str,
        error: type[exceptions.GoogleAPICallError]) -> None:
    job = future(client, api.run("demo.fail", {"code": code, "message": "no luck"})["name"])
    with pytest.raises(error) as caught:
        job.result(timeout=30)
    assert type(caught.value) is error
    assert caught.value.message == "no luck"
    status = caught.value.errors[0]  # the operation's google.rpc.Status
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("DEMO_FAILURE", "opqueue")
    assert job.metadata.state == OperationMetadata.FAILED


def test_a_cancelled_job_raises_cancelled(api: Api, client: AbstractOperationsClient) -> None:
    name = api.run("test.gate", {"gate": uuid.uuid4().hex})["name"]
    api.state_becomes(name, "RUNNING")
    job = future(client, name)
    assert job.cancel()
    with pytest.raises(exceptions.Cancelled):
        job.result(timeout=30)
    assert job.cancelled()
    assert job.metadata.state == OperationMetadata.CANCELLED


def test_metadata_follows_progress(api: Api, client: AbstractOperationsClient,
                                   stack: Stack) -> None:
    gate = uuid.uuid4().hex
    job = future(client, api.run("test.steps", {"gate": gate, "steps": 4})["name"])
    for step in (1, 2, 3):
        open_gate(stack, gate)
        eventually(_progress_reaches(job, 25 * step), what=f"progress {25 * step}%")
        meta = job.metadata
        assert (meta.state, meta.status_message) == (meta.RUNNING, f"step {step} of 4")
        assert json_format.MessageToDict(meta.details) == {"step": step}
    open_gate(stack, gate)
    assert json_format.MessageToDict(job.result(timeout=30)) == {"steps": 4}
    assert (job.metadata.state, job.metadata.progress_percent) == (OperationMetadata.SUCCEEDED,
                                                                    100)


def _progress_reaches(job: operation.Operation, percent: int) -> Callable[[], bool]:
    # done() refreshes the operation, so metadata is the server's latest.
    return lambda: not job.done() and job.metadata.progress_percent == percent


# 3. HTTP errors: the google.api_core exception, with ErrorInfo's reason and domain.

def _missing(project: str = "demo") -> str:
    return f"projects/{project}/operations/{uuid.uuid4()}"


NOT_FOUND = (exceptions.NotFound, "OPERATION_NOT_FOUND", None)


@pytest.mark.parametrize(("call", "expected"), [
    (lambda c: c.get_operation(_missing()), NOT_FOUND),
    (lambda c: c.cancel_operation(_missing()), NOT_FOUND),
    (lambda c: c.delete_operation(_missing()), NOT_FOUND),
    (lambda c: c.get_operation("projects/demo/operations/not-a-uuid"),
     (exceptions.BadRequest, "INVALID_OPERATION_ID", None)),
    (lambda c: c.get_operation(_missing("Upper")),
     (exceptions.BadRequest, "INVALID_PROJECT_ID", None)),
    (lambda c: c.list_operations("projects/demo", "colour = red"),
     (exceptions.BadRequest, "INVALID_FIELD", "filter")),
    (lambda c: c.list_operations("projects/demo", "", page_size=-1),
     (exceptions.BadRequest, "INVALID_FIELD", "pageSize")),
], ids=["get-missing", "cancel-missing", "delete-missing", "bad-id", "bad-project",
        "bad-filter", "negative-page-size"])
def test_http_errors_become_google_exceptions(
        client: AbstractOperationsClient, call: Callable[[AbstractOperationsClient], object],
        expected: tuple[type[exceptions.GoogleAPICallError], str, str | None]) -> None:
    error, reason, field = expected
    with pytest.raises(error) as caught:
        call(client)
    assert type(caught.value) is error
    assert (caught.value.reason, caught.value.domain) == (reason, "opqueue")
    violations = [v["field"] for detail in caught.value.details
                  for v in detail.get("fieldViolations", ())]
    assert violations == ([field] if field else [])


# 4. URL bindings: the defaults work; pinned opqueue bindings work; Google's bare one cannot.

def test_pinned_opqueue_bindings_reach_every_route(api: Api, stack: Stack) -> None:
    pinned = operations_client(stack.base_url, OPQUEUE_BINDINGS)
    name = api.run("test.gate", {"gate": uuid.uuid4().hex})["name"]
    assert pinned.get_operation(name).name == name
    assert [op.name for op in pinned.list_operations(f"projects/{api.project}", "")] == [name]
    pinned.cancel_operation(name)
    assert api.wait(name)["metadata"]["state"] == "CANCELLED"
    pinned.delete_operation(name)
    with pytest.raises(exceptions.NotFound):
        pinned.get_operation(name)


@pytest.mark.parametrize(("http_options", "name"), [
    # google/longrunning/operations.proto's own binding only matches `operations/...`.
    ({OPERATIONS + "GetOperation": [{"method": "get", "uri": "/v1/{name=operations/**}"}]},
     f"projects/demo/operations/{uuid.uuid4()}"),
    (None, f"operations/{uuid.uuid4()}"),  # the defaults need a parent before operations/
], ids=["google-binding", "no-parent"])
def test_names_the_binding_cannot_express_fail_in_the_client(
        stack: Stack, http_options: dict[str, Any] | None, name: str) -> None:
    with pytest.raises(ValueError, match="matches at least one accepted HTTP binding"):
        operations_client(stack.base_url, http_options).get_operation(name)


def test_requests_of_a_generated_rest_client_are_accepted(api: Api) -> None:
    """A GAPIC client generated from protos/opqueue/v1 adds `$alt=json;enum-encoding=int`."""
    jobs = jobs_pb2.DESCRIPTOR.services_by_name["Jobs"]
    rule = jobs.methods_by_name["RunJob"].GetOptions().Extensions[annotations_pb2.http]
    run = jobs_pb2.RunJobRequest(parent=f"projects/{api.project}", job="demo.sleep")
    run.input.update({"seconds": 0})
    sent, body, query = rest_helpers.transcode_request(
        [{"method": "post", "uri": rule.post, "body": rule.body}], run, rest_numeric_enums=True)
    assert query == {"$alt": "json;enum-encoding=int"}
    answer = api.http.post(api.base + sent["uri"], data=body, params=query, timeout=10,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    name = json_format.Parse(answer.text, operations_pb2.Operation()).name
    api.wait(name)
    listing = operations_pb2.ListOperationsRequest(name=f"projects/{api.project}",
                                                   filter="done = true", page_size=2)
    sent, _, query = rest_helpers.transcode_request(
        OPQUEUE_BINDINGS[OPERATIONS + "ListOperations"], listing, rest_numeric_enums=True)
    answer = api.http.get(api.base + sent["uri"], params=query, timeout=10)
    assert answer.status_code == 200, answer.text
    page = json_format.Parse(answer.text, operations_pb2.ListOperationsResponse())
    assert [op.name for op in page.operations] == [name]


# The documentation's code, run as written.

def test_the_documented_code_runs(stack: Stack, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPQUEUE_URL", stack.base_url)
    monkeypatch.setenv("OPQUEUE_PROJECT", f"p-{uuid.uuid4().hex[:12]}")
    section = README.read_text().split(SECTION, 1)[1].split("\n### gRPC from Python", 1)[0]
    code = "\n".join(re.findall(r"^```python\n(.*?)^```", section, re.S | re.M))
    assert code
    exec(compile(code, str(README), "exec"), {"__name__": "google_client_doc"})
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert ast.literal_eval(printed.pop("result")) == {"slept": 0.5, "steps": 5}
    assert printed == {"state": "SUCCEEDED 100%", "failed": "NotFound no such thing",
                       "succeeded": "True", "cancelled": "True", "pinned": "True"}
