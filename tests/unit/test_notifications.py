"""Webhook policy, signatures, the outbox and server-sent events, without a server (#9)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from core import record
from core.config import Settings
from core.outbox import Delivery, Outbox
from core.states import Event
from core.store import OperationStore
from core.webhooks import sign, verify
from tests.conftest import run_job
from tests.fakes import RecordingDispatcher

SECRETS = json.dumps({"demo": "s3cret"})


@pytest.fixture
def app(settings: Settings, redis: fakeredis.FakeRedis, dispatcher: RecordingDispatcher) -> Flask:
    return create_app(replace(settings, webhook_secrets=SECRETS, max_watch_seconds=0.2,
                              webhook_allowed_networks=("127.0.0.0/8",)),
                      redis=redis, dispatcher=dispatcher)  # type: ignore[arg-type]


def notify(url: str, *events: str) -> dict[str, Any]:
    return {"notify": {"url": url, **({"events": list(events)} if events else {})}}


@pytest.mark.parametrize("url", [
    "http://10.1.2.3/hook", "http://192.168.0.10/hook", "http://169.254.169.254/latest",
    "http://[::1]:8080/hook", "http://0.0.0.0/hook", "ftp://127.0.0.1/hook", "http:///nohost",
    "http://user:pass@127.0.0.1/hook",
])
def test_webhook_urls_that_are_private_or_odd_are_refused_and_nothing_is_stored(
        client: FlaskClient, store: OperationStore, dispatcher: RecordingDispatcher,
        url: str) -> None:
    answer = run_job(client, **notify(url))
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["details"][-1]["fieldViolations"][0]["field"] == "notify.url"
    assert dispatcher.queued == []
    assert store.list_page("demo", 10).operations == []


def test_allowed_networks_and_a_configured_secret_let_a_webhook_through(
        client: FlaskClient) -> None:
    assert run_job(client, **notify("http://127.0.0.1:9/hook")).status_code == 200


def test_a_project_without_a_secret_cannot_ask_for_webhooks(client: FlaskClient) -> None:
    answer = run_job(client, project="unsigned", **notify("http://127.0.0.1:9/hook"))
    assert answer.status_code == 400
    assert answer.get_json()["error"]["status"] == "FAILED_PRECONDITION"


def test_a_signature_verifies_and_a_tampered_or_stale_one_does_not() -> None:
    body = b'{"done":true}'
    header = sign(b"s3cret", body)
    assert verify(b"s3cret", header, body)
    assert not verify(b"s3cret", header, body + b" ")
    assert not verify(b"other", header, body)
    assert not verify(b"s3cret", sign(b"s3cret", body, timestamp=1), body)


def test_the_outbox_gets_a_delivery_for_each_event_asked_for(client: FlaskClient,
                                                             store: OperationStore) -> None:
    name = run_job(client, **notify("http://127.0.0.1:9/h", "done", "progress")).get_json()[
        "name"]
    ident = name.rsplit("/", 1)[1]
    store.apply("demo", ident, Event.START)
    store.apply("demo", ident, Event.PROGRESS, {record.PROGRESS_PERCENT: 50})
    store.apply("demo", ident, Event.SUCCEED, {record.RESPONSE: "1"})
    outbox = Outbox(store.redis, store.keys, 60)
    claimed = {delivery.event: delivery.delivery
               for _, delivery in outbox.claim(now_ms=2**50, limit=10)}
    entries = [entry_id for entry_id, _ in store.redis.xrange(store.keys.events("demo"))]
    # Deliveries are not ordered among themselves; each names its change in the stream.
    assert claimed == {"progress": f"{ident}/{entries[2]}", "done": f"{ident}/{entries[3]}"}
    assert outbox.claim(now_ms=2**50, limit=10) == []  # claimed ones are not handed out twice


def test_only_done_is_delivered_by_default(client: FlaskClient, store: OperationStore) -> None:
    ident = run_job(client, **notify("http://127.0.0.1:9/h")).get_json()["name"].rsplit("/")[-1]
    store.apply("demo", ident, Event.START)
    store.apply("demo", ident, Event.PROGRESS, {record.PROGRESS_PERCENT: 50})
    store.apply("demo", ident, Event.FAIL, {record.ERROR: "{}"})
    claimed = Outbox(store.redis, store.keys, 60).claim(now_ms=2**50, limit=10)
    assert [delivery.event for _, delivery in claimed] == ["done"]


def test_a_retry_is_the_next_attempt_of_the_same_delivery(store: OperationStore) -> None:
    outbox = Outbox(store.redis, store.keys, 60)
    first = Delivery("demo", "x", "done", "x/1-0")
    store.projects.register("demo")  # as creating its operation did
    store.redis.zadd(store.keys.outbox("demo"), {first.member(): 0})
    [(member, claimed)] = outbox.claim(now_ms=1, limit=5)
    outbox.retry(member, claimed, due_ms=5)
    [(_, again)] = outbox.claim(now_ms=5, limit=5)
    assert (again.delivery, again.attempt) == ("x/1-0", 2)


def events_of(body: str) -> list[dict[str, Any]]:
    frames = [frame for frame in body.split("\n\n") if frame and not frame.startswith(":")]
    parsed = []
    for frame in frames:
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        parsed.append({**fields, "data": json.loads(fields["data"])})
    return parsed


def test_watching_an_operation_streams_a_snapshot_then_its_changes_until_done(
        client: FlaskClient, store: OperationStore) -> None:
    name = run_job(client).get_json()["name"]
    ident = name.rsplit("/", 1)[1]
    store.apply("demo", ident, Event.START)
    store.apply("demo", ident, Event.SUCCEED, {record.RESPONSE: "7"})
    # Resuming after the create: the start and the success follow, then the stream ends.
    [create, start, succeed] = [entry for entry, _ in store.redis.xrange(store.keys.events("demo"))]
    answer = client.get(f"/v1/{name}:watch", headers={"Last-Event-ID": create})
    assert answer.mimetype == "text/event-stream"
    events = events_of(answer.get_data(as_text=True))
    assert [(e["id"], e["event"]) for e in events] == [(start, "start"), (succeed, "succeed")]
    assert events[-1]["data"]["done"] is True
    # A fresh watch of a done operation is just its snapshot.
    fresh = events_of(client.get(f"/v1/{name}:watch").get_data(as_text=True))
    assert [(e["event"], e["data"]["done"]) for e in fresh] == [("snapshot", True)]


def test_watching_a_project_streams_its_changes_and_deletions(client: FlaskClient,
                                                              store: OperationStore) -> None:
    start = store.stream_tip("demo")
    first = run_job(client).get_json()["name"]
    client.delete(f"/v1/{first}")
    answer = client.get("/v1/projects/demo/operations:watch", headers={"Last-Event-ID": start})
    events = events_of(answer.get_data(as_text=True))
    assert [e["event"] for e in events] == ["create", "delete"]
    assert events[1]["data"] == {"name": first, "deleted": True}


@pytest.mark.parametrize(("path", "headers", "status"), [
    ("/v1/projects/demo/operations/0b0c8a4e-6f7e-4c3b-9d55-2f1e0a8b9c7d:watch", {}, 404),
    ("/v1/projects/demo/operations:watch", {"Last-Event-ID": "yesterday"}, 400),
])
def test_bad_watches(client: FlaskClient, path: str, headers: dict[str, str],
                     status: int) -> None:
    assert client.get(path, headers=headers).status_code == status
