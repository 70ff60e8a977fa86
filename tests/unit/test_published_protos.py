"""Every body the API sends parses with nothing but the published protos.

A client generated from protos/ in another language knows exactly those files and what they
import, no more. So the descriptor pool here is built from protoc's descriptor set of
protos/ (`scripts/protoc.py --include_imports`), never from whatever Python modules happen
to be imported, and every `@type` in every body shape must resolve in it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from core import record
from core.errors import Aborted, InvalidArgument, NotFound, OperationError, Unavailable
from core.states import Event
from core.store import OperationStore
from tests.conftest import run_job

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "demo"


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pool.DescriptorPool:
    """The types a generator sees: protos/ and its imports, as protoc resolves them."""
    out = tmp_path_factory.mktemp("protos") / "published.binpb"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "protoc.py"), "--include_imports",
                    f"--descriptor_set_out={out}"], check=True, cwd=ROOT)
    published = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        published.Add(file)
    return published


def parse(pool: descriptor_pool.DescriptorPool, type_name: str, body: Any) -> Message:
    """`body` strictly parsed as `type_name`, every `Any` resolved from `pool` alone."""
    message = message_factory.GetMessageClass(pool.FindMessageTypeByName(type_name))()
    return json_format.Parse(json.dumps(body), message, ignore_unknown_fields=False,
                             descriptor_pool=pool)


def type_urls(body: Any) -> Iterator[str]:
    """Every `@type` anywhere in `body`."""
    if isinstance(body, dict):
        if "@type" in body:
            yield body["@type"]
        for value in body.values():
            yield from type_urls(value)
    elif isinstance(body, list):
        for item in body:
            yield from type_urls(item)


def ended(store: OperationStore, client: FlaskClient, event: Event,
          fields: dict[str, Any]) -> dict[str, Any]:
    """A new operation run to its end by `event` with `fields`, as GetOperation answers."""
    name = run_job(client).get_json()["name"]
    operation_id = name.rsplit("/", 1)[1]
    store.apply(PROJECT, operation_id, Event.START, {record.WORKER: "w1@host"},
                increment=(record.ATTEMPT,))
    store.apply(PROJECT, operation_id, event, fields)
    body: dict[str, Any] = client.get(f"/v1/{name}").get_json()
    return body


# Every error detail kind opqueue emits: ErrorInfo always, BadRequest for field violations,
# RetryInfo with UNAVAILABLE.
FAILURES: list[OperationError] = [
    NotFound("input file x.csv not found", reason="INPUT_NOT_FOUND", metadata={"f": "x"}),
    InvalidArgument.for_fields({"input.seconds": "must not be negative"}),
    Unavailable("the upstream service is down", reason="UPSTREAM_DOWN", retry_after=2.5),
    Aborted("the worker running the job was lost", reason="WORKER_LOST"),
]


def test_every_operation_shape_resolves(pool: descriptor_pool.DescriptorPool,
                                        client: FlaskClient, store: OperationStore) -> None:
    pending = run_job(client, labels={"team": "data"}).get_json()
    succeeded = ended(store, client, Event.SUCCEED,
                      {record.RESPONSE: record.encode_json({"rows": [1, "a", None]})})
    failed = [ended(store, client, Event.FAIL, {record.ERROR: record.encode_json(e.status())})
              for e in FAILURES]
    cancelled = run_job(client).get_json()["name"]
    assert client.post(f"/v1/{cancelled}:cancel").status_code == 200
    bodies = [pending, succeeded, *failed, client.get(f"/v1/{cancelled}").get_json()]

    for body in bodies:
        parse(pool, "google.longrunning.Operation", body)
    page = client.get(f"/v1/projects/{PROJECT}/operations?pageSize=3").get_json()
    assert page["nextPageToken"]
    parse(pool, "google.longrunning.ListOperationsResponse", page)
    everything = client.get(f"/v1/projects/{PROJECT}/operations").get_json()
    parse(pool, "google.longrunning.ListOperationsResponse", everything)
    # The walk covered every kind of `Any` we send.
    assert set(type_urls(everything)) == {
        "type.googleapis.com/opqueue.v1.OperationMetadata",
        "type.googleapis.com/google.protobuf.Value",
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/google.rpc.BadRequest",
        "type.googleapis.com/google.rpc.RetryInfo"}


def test_batch_and_job_descriptions_resolve(pool: descriptor_pool.DescriptorPool,
                                            client: FlaskClient) -> None:
    batch = client.post(f"/v1/projects/{PROJECT}/jobs/demo.sleep:batchRun",
                        json={"requests": [{"input": {"seconds": 1}}, {"input": {"seconds": 2}}]})
    assert batch.status_code == 200, batch.get_json()
    parse(pool, "opqueue.v1.BatchRunJobsResponse", batch.get_json())
    parse(pool, "opqueue.v1.ListJobsResponse", client.get("/v1/jobs").get_json())
    parse(pool, "opqueue.v1.Job", client.get("/v1/jobs/demo.sleep").get_json())


def test_error_envelope_details_resolve(pool: descriptor_pool.DescriptorPool,
                                        client: FlaskClient) -> None:
    answer = run_job(client, input={"seconds": -1})
    envelope = answer.get_json()["error"]
    status = parse(pool, "google.rpc.Status", {"code": 3, "message": envelope["message"],
                                               "details": envelope["details"]})
    assert [detail.TypeName() for detail in status.details] == [  # type: ignore[attr-defined]
        "google.rpc.ErrorInfo", "google.rpc.BadRequest"]


def test_the_pool_is_only_the_published_set(pool: descriptor_pool.DescriptorPool) -> None:
    # The harness must not fall back on Python's default pool, or the tests above prove
    # nothing: a type no published file imports is unknown here.
    with pytest.raises(KeyError):
        pool.FindMessageTypeByName("google.type.Money")
    body = {"name": "x", "done": True,
            "error": {"code": 2, "details": [{"@type": "type.googleapis.com/google.type.Money",
                                              "currencyCode": "EUR"}]}}
    with pytest.raises(json_format.ParseError, match=r"google\.type\.Money"):
        parse(pool, "google.longrunning.Operation", body)
