"""Every JSON body the API returns parses strictly into the protobuf message it claims to be.

A protobuf client registers `opqueue.v1.operation_metadata_pb2` and the `google.rpc` detail
messages, then parses our JSON with `ignore_unknown_fields=False`: any extra key, wrong type,
bad timestamp or unregistered `@type` is a `ParseError`, so these tests catch wire drift that
a dict comparison would not.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2, empty_pb2, json_format, struct_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from core.errors import TYPE_PREFIX, InvalidArgument, NotFound, OperationError, Unavailable
from core.operation import Operation
from core.states import State
from core.wire import METADATA_TYPE, VALUE_TYPE, dump_operation, dump_operation_by_schema
from opqueue.v1 import jobs_pb2, operation_metadata_pb2
from tests.conftest import run_job
from tests.fakes import RecordingDispatcher

ProtoState = operation_metadata_pb2.OperationMetadata.State

OPERATION_KEYS = {"name", "metadata", "done", "error", "response"}
ENVELOPE_KEYS = {"code", "message", "status", "details"}
# google.rpc.ErrorInfo.reason: UPPER_SNAKE_CASE, at most 63 characters.
REASON = re.compile(r"[A-Z][A-Z0-9_]{0,61}[A-Z0-9]")
DETAIL_TYPES: dict[str, type[Message]] = {
    descriptor.full_name: getattr(error_details_pb2, name)
    for name, descriptor in error_details_pb2.DESCRIPTOR.message_types_by_name.items()
}
RUN = "/v1/projects/demo/jobs/demo.sleep:run"

CREATED = 1_700_000_000_123_456  # microseconds since the epoch
STARTED = CREATED + 2_500_000
UPDATED = CREATED + 7_000_001
ENDED = 1_700_000_010_000_000  # a whole second: rendered `.000000Z`


def make_operation(state: State, **fields: Any) -> Operation:
    """An operation in `state` with fixed times; `fields` override any attribute."""
    defaults: dict[str, Any] = {
        "project": "demo", "id": str(uuid.uuid4()), "job": "demo.sleep",
        "create_time": CREATED, "update_time": UPDATED,
    }
    return Operation(**{**defaults, **fields, "state": state})


def make_running(state: State = State.RUNNING, **fields: Any) -> Operation:
    """A started, not yet done operation with every field a running job fills in."""
    running: dict[str, Any] = {
        "start_time": STARTED, "worker": "celery@host-1", "attempt": 2, "progress_percent": 40,
        "status_message": "step 4 of 10",
        "details": {"step": 4, "of": 10, "phase": "copy", "nested": {"ok": True, "xs": [1, "a"]}},
        "labels": {"team": "data", "env": "prod"},
    }
    return make_operation(state, **{**running, **fields})


def make_done(state: State, **fields: Any) -> Operation:
    """A terminal operation that ran: started, ended, fully progressed."""
    done: dict[str, Any] = {"start_time": STARTED, "end_time": ENDED, "update_time": ENDED,
                            "worker": "celery@host-1", "attempt": 1, "progress_percent": 100}
    return make_operation(state, **{**done, **fields})


def parse_operation(body: dict[str, Any]) -> operations_pb2.Operation:
    """`body` strictly parsed as a `google.longrunning.Operation`, plus the wire invariants."""
    assert set(body) <= OPERATION_KEYS
    assert isinstance(body["done"], bool)
    outcomes = {"error", "response"} & set(body)
    assert len(outcomes) == (1 if body["done"] else 0), outcomes
    assert body["metadata"]["@type"] == METADATA_TYPE
    return json_format.Parse(json.dumps(body), operations_pb2.Operation(),
                             ignore_unknown_fields=False)


def unpack_metadata(parsed: operations_pb2.Operation) -> Any:
    """The `OperationMetadata` packed in an operation."""
    metadata = operation_metadata_pb2.OperationMetadata()
    assert parsed.metadata.Unpack(metadata), parsed.metadata.type_url
    return metadata


def unpack_details(status: status_pb2.Status) -> list[Message]:
    """Every detail of a `google.rpc.Status`, each unpacked into its `google.rpc` type."""
    unpacked = []
    for packed in status.details:
        detail = DETAIL_TYPES[packed.TypeName()]()
        assert packed.Unpack(detail), packed.type_url
        unpacked.append(detail)
    return unpacked


def assert_status_matches(parsed: status_pb2.Status, sent: dict[str, Any]) -> None:
    """A parsed Status holds exactly what was sent: code, message, and every detail."""
    assert (parsed.code, parsed.message) == (sent["code"], sent["message"])
    details = unpack_details(parsed)
    assert [TYPE_PREFIX + d.DESCRIPTOR.full_name for d in details] == [
        d["@type"] for d in sent["details"]]
    for detail, raw in zip(details, sent["details"], strict=True):
        assert json_format.MessageToDict(detail) == _canonical(raw)
    infos = [d for d in details if isinstance(d, error_details_pb2.ErrorInfo)]
    assert len(infos) == 1
    assert infos[0].domain == "opqueue"
    assert REASON.fullmatch(infos[0].reason), infos[0].reason


def _canonical(detail: dict[str, Any]) -> dict[str, Any]:
    """A detail as protobuf prints it: no `@type`, no empty fields, durations normalised."""
    fields = {k: v for k, v in detail.items() if k != "@type" and v not in ({}, [], "")}
    if "retryDelay" in fields:
        delay = duration_pb2.Duration()
        delay.FromJsonString(fields["retryDelay"])
        fields["retryDelay"] = delay.ToJsonString()
    return fields


def parse_envelope(answer: Any, http: int, status: str) -> status_pb2.Status:
    """A Google error envelope checked against its HTTP status and parsed as a Status."""
    body = answer.get_json()
    assert set(body) == {"error"}
    envelope = body["error"]
    assert set(envelope) == ENVELOPE_KEYS
    assert (answer.status_code, envelope["code"], envelope["status"]) == (http, http, status)
    sent = {"code": code_pb2.Code.Value(status), "message": envelope["message"],
            "details": envelope["details"]}
    parsed = json_format.Parse(json.dumps(sent), status_pb2.Status(),
                               ignore_unknown_fields=False)
    assert_status_matches(parsed, sent)
    return parsed


# Operations rendered from the domain object, one per state.


def test_proto_states_are_the_core_states() -> None:
    names = [value.name for value in ProtoState.DESCRIPTOR.values]
    assert names == ["STATE_UNSPECIFIED", *(state.value for state in State)]


def test_run_job_documents_the_types_we_pack() -> None:
    method = jobs_pb2.DESCRIPTOR.services_by_name["Jobs"].methods_by_name["RunJob"]
    info = method.GetOptions().Extensions[operations_pb2.operation_info]
    assert TYPE_PREFIX + info.metadata_type == METADATA_TYPE
    assert TYPE_PREFIX + info.response_type == VALUE_TYPE
    assert method.output_type is operations_pb2.Operation.DESCRIPTOR


def test_pending_operation() -> None:
    op = make_operation(State.PENDING)
    body = dump_operation(op)
    parsed = parse_operation(body)
    metadata = unpack_metadata(parsed)

    assert (parsed.name, parsed.done) == (op.name, False)
    assert parsed.WhichOneof("result") is None
    assert metadata.job == "demo.sleep"
    assert metadata.state == ProtoState.PENDING
    assert metadata.create_time.ToMicroseconds() == CREATED
    assert metadata.update_time.ToMicroseconds() == UPDATED
    assert not metadata.HasField("start_time")
    assert not metadata.HasField("end_time")


@pytest.mark.parametrize("requested_cancellation", [False, True])
def test_running_and_cancelling_operation(requested_cancellation: bool) -> None:
    state = State.CANCELLING if requested_cancellation else State.RUNNING
    op = make_running(state, requested_cancellation=requested_cancellation)
    parsed = parse_operation(dump_operation(op))
    metadata = unpack_metadata(parsed)

    assert parsed.done is False
    assert parsed.WhichOneof("result") is None
    assert ProtoState.Name(metadata.state) == state.value
    assert metadata.start_time.ToMicroseconds() == STARTED
    assert metadata.update_time.ToMicroseconds() == UPDATED
    assert not metadata.HasField("end_time")
    assert (metadata.worker, metadata.attempt) == ("celery@host-1", 2)
    assert (metadata.progress_percent, metadata.status_message) == (40, "step 4 of 10")
    assert json_format.MessageToDict(metadata.details) == op.details
    assert dict(metadata.labels) == op.labels
    assert metadata.requested_cancellation is requested_cancellation


@pytest.mark.parametrize("value", [
    {"rows": 3, "files": ["a.csv", "b.csv"], "meta": {"ok": True, "skipped": None}},
    [1, "two", 3.5, False, None, {"x": []}],
    "done",
    42,
    2.5,
    True,
    None,
], ids=["dict", "list", "string", "int", "float", "bool", "null"])
def test_succeeded_operation_carries_the_value(value: Any) -> None:
    op = make_done(State.SUCCEEDED, response=value)
    body = dump_operation(op)
    parsed = parse_operation(body)
    metadata = unpack_metadata(parsed)

    assert parsed.done is True
    assert parsed.WhichOneof("result") == "response"
    assert body["response"]["@type"] == VALUE_TYPE
    response = struct_pb2.Value()
    assert parsed.response.Unpack(response), parsed.response.type_url
    assert json_format.MessageToDict(response) == value
    assert metadata.state == ProtoState.SUCCEEDED
    assert metadata.end_time.ToMicroseconds() == ENDED
    assert metadata.progress_percent == 100


@pytest.mark.parametrize("error", [
    NotFound("input file x.csv not found", reason="INPUT_NOT_FOUND", metadata={"file": "x.csv"}),
    InvalidArgument.for_fields({"input.seconds": "must not be negative",
                                "input.name": "is required"}),
    Unavailable("the upstream service is down", reason="UPSTREAM_DOWN", retry_after=2.5),
], ids=["not-found", "bad-request", "retry-info"])
def test_failed_operation_carries_the_status(error: OperationError) -> None:
    sent = error.status()
    op = make_done(State.FAILED, error=sent, progress_percent=30)
    parsed = parse_operation(dump_operation(op))

    assert parsed.done is True
    assert parsed.WhichOneof("result") == "error"
    assert_status_matches(parsed.error, sent)
    assert unpack_metadata(parsed).state == ProtoState.FAILED
    assert unpack_metadata(parsed).progress_percent == 30


def test_failed_operation_without_a_stored_error_is_unknown() -> None:
    parsed = parse_operation(dump_operation(make_done(State.FAILED)))
    assert parsed.error.code == code_pb2.UNKNOWN


@pytest.mark.parametrize("started", [False, True], ids=["while-pending", "while-running"])
def test_cancelled_operation(started: bool) -> None:
    op = (make_done(State.CANCELLED, requested_cancellation=True) if started else
          make_operation(State.CANCELLED, end_time=ENDED, requested_cancellation=True))
    parsed = parse_operation(dump_operation(op))
    metadata = unpack_metadata(parsed)

    assert parsed.done is True
    assert parsed.error.code == code_pb2.CANCELLED
    assert_status_matches(parsed.error, dump_operation(op)["error"])
    assert metadata.state == ProtoState.CANCELLED
    assert metadata.requested_cancellation is True
    assert metadata.HasField("start_time") is started


def test_an_unknown_metadata_key_is_rejected() -> None:
    # The harness itself must be strict, or every test above proves nothing.
    body = dump_operation(make_operation(State.PENDING))
    body["metadata"]["color"] = "blue"
    with pytest.raises(json_format.ParseError, match="color"):
        parse_operation(body)


# Bodies served over HTTP.


def test_operations_over_http(client: FlaskClient) -> None:
    answer = run_job(client, labels={"team": "data"})
    assert answer.status_code == 200
    name = parse_operation(answer.get_json()).name

    got = parse_operation(client.get(f"/v1/{name}").get_json())
    assert unpack_metadata(got).labels["team"] == "data"
    cancelled = client.post(f"/v1/{name}:cancel")
    json_format.Parse(cancelled.get_data(as_text=True), empty_pb2.Empty())
    waited = parse_operation(client.post(f"/v1/{name}:wait", json={"timeout": "1s"}).get_json())
    assert waited.error.code == code_pb2.CANCELLED
    deleted = client.delete(f"/v1/{name}")
    json_format.Parse(deleted.get_data(as_text=True), empty_pb2.Empty())


def test_list_pages(client: FlaskClient) -> None:
    names = [run_job(client, input={"seconds": n}).get_json()["name"] for n in (1, 2, 3)]

    first = parse_list_page(client.get("/v1/projects/demo/operations?pageSize=2"))
    assert [op.name for op in first.operations] == [names[2], names[1]]  # newest first
    assert first.next_page_token
    second = parse_list_page(client.get(
        f"/v1/projects/demo/operations?pageSize=2&pageToken={first.next_page_token}"))
    assert [op.name for op in second.operations] == [names[0]]
    assert second.next_page_token == ""


def parse_list_page(answer: Any) -> operations_pb2.ListOperationsResponse:
    """A list page strictly parsed, each operation in it held to the Operation invariants."""
    assert answer.status_code == 200
    body = answer.get_json()
    for op in body["operations"]:
        parse_operation(op)
    return json_format.Parse(json.dumps(body), operations_pb2.ListOperationsResponse(),
                             ignore_unknown_fields=False)


def _unknown_operation(client: FlaskClient) -> Any:
    return client.get(f"/v1/projects/demo/operations/{uuid.uuid4()}")


def _bad_input(client: FlaskClient) -> Any:
    return client.post(RUN, json={"input": {"seconds": -1}})


def _malformed_json(client: FlaskClient) -> Any:
    return client.post(RUN, data=b'{"input": ', content_type="application/json")


def _unknown_route(client: FlaskClient) -> Any:
    return client.get("/v1/projects/demo/nothing-here")


def _wrong_method(client: FlaskClient) -> Any:
    return client.put("/v1/jobs")


def _oversize_body(client: FlaskClient) -> Any:
    pad = "x" * 70_000
    return client.post(RUN, json={"input": {"seconds": 1, "pad": pad}})


@pytest.mark.parametrize(("send", "http", "status"), [
    (_unknown_operation, 404, "NOT_FOUND"),
    (_bad_input, 400, "INVALID_ARGUMENT"),
    (_malformed_json, 400, "INVALID_ARGUMENT"),
    (_unknown_route, 404, "NOT_FOUND"),
    (_wrong_method, 404, "NOT_FOUND"),
    (_oversize_body, 400, "INVALID_ARGUMENT"),
], ids=["unknown-operation", "bad-input", "malformed-json", "unknown-route", "wrong-method",
        "oversize-body"])
def test_error_envelope(client: FlaskClient, send: Callable[[FlaskClient], Any], http: int,
                        status: str) -> None:
    parse_envelope(send(client), http, status)


def test_bad_input_envelope_names_the_field(client: FlaskClient) -> None:
    error = parse_envelope(_bad_input(client), 400, "INVALID_ARGUMENT")
    bad_request = error_details_pb2.BadRequest()
    assert [d.Unpack(bad_request) for d in error.details if d.Is(bad_request.DESCRIPTOR)] == [True]
    assert [v.field for v in bad_request.field_violations] == ["input.seconds"]
    assert bad_request.field_violations[0].description


def _readiness(client: FlaskClient) -> Any:
    return client.get("/readyz")


@pytest.mark.parametrize("send", [_readiness, run_job], ids=["readyz", "run-job"])
def test_unavailable_envelope_carries_retry_info(
        client: FlaskClient, dispatcher: RecordingDispatcher,
        send: Callable[[FlaskClient], Any]) -> None:
    dispatcher.broken = True
    error = parse_envelope(send(client), 503, "UNAVAILABLE")
    retry = error_details_pb2.RetryInfo()
    assert [d.Unpack(retry) for d in error.details if d.Is(retry.DESCRIPTOR)] == [True]
    assert retry.retry_delay.ToMilliseconds() > 0



@pytest.mark.parametrize("state", list(State))
def test_the_fast_rendering_matches_the_schemas(state: State) -> None:
    bare = Operation(project="demo", id="0b0c8a4e-6f7e-4c3b-9d55-2f1e0a8b9c7d", job="demo.sleep",
                     state=state, create_time=1_700_000_000_000_001,
                     update_time=1_700_000_000_000_002)
    full = replace(bare, start_time=1_700_000_000_000_003, end_time=1_700_000_000_000_004,
                   progress_percent=40, status_message="step 2", details={"step": 2},
                   attempt=2, worker="w1@host", requested_cancellation=True,
                   labels={"team": "ml"}, response={"slept": 1},
                   error={"code": 9, "message": "no", "details": []})
    for operation in (bare, full):
        assert json.dumps(dump_operation(operation)) == \
            json.dumps(dump_operation_by_schema(operation))
