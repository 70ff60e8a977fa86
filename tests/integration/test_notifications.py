"""Push notifications against real workers (#9): webhooks to a local receiver, the change
stream read by a consumer group, and server-sent events read to the end and resumed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import requests

from core.connection import redis_client
from core.keyspace import Keys
from core.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify
from tests.integration.conftest import WEBHOOK_SECRET
from tests.receiver import Receiver
from tests.stack import Api, Stack, eventually, open_gate


def deliveries(api: Api, name: str) -> list[dict[str, Any]]:
    answer = api.http.get(f"{api.base}/v1/{name}/webhookDeliveries", timeout=10)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["deliveries"]
    return found


def outbox_mentions(stack: Stack, name: str) -> bool:
    client = redis_client(stack.redis_url)
    members = client.zrange(Keys(stack.prefix).outbox(name.split("/")[1]), 0, -1)
    client.close()
    return any(name.rsplit("/", 1)[1] in member for member in members)


def test_a_done_webhook_arrives_once_with_a_valid_signature(api: Api, stack: Stack) -> None:
    with Receiver() as receiver:
        name = api.run("demo.sleep", {"seconds": 0}, notify={"url": receiver.url("/ok")})["name"]
        done = api.wait(name)
        [request] = eventually(lambda: receiver.at("/ok"), what="the webhook")
        assert verify(WEBHOOK_SECRET.encode(), request.headers[SIGNATURE_HEADER], request.body)
        assert request.headers[EVENT_HEADER] == "done"
        assert request.headers[DELIVERY_HEADER].startswith(name.rsplit("/", 1)[1] + "/")
        assert json.loads(request.body) == done
        log = eventually(lambda: deliveries(api, name), what="the delivery log")
        assert [(e["attempt"], e["status"], e["outcome"]) for e in log] == [(1, 200, "delivered")]
        assert not outbox_mentions(stack, name)  # nothing left that could send it again
        assert len(receiver.at("/ok")) == 1


def test_a_receiver_that_fails_twice_gets_the_third_attempt(api: Api) -> None:
    with Receiver(answers={"/flaky": [500, 500, 200]}) as receiver:
        name = api.run("demo.sleep", {"seconds": 0}, notify={"url": receiver.url("/flaky")})[
            "name"]
        attempts = eventually(lambda: len(receiver.at("/flaky")) == 3 and receiver.at("/flaky"),
                              what="three attempts")
        assert len({request.headers[DELIVERY_HEADER] for request in attempts}) == 1
        log = eventually(lambda: len(entries := deliveries(api, name)) == 3 and entries,
                         what="three logged attempts")
        assert [(e["attempt"], e.get("status"), e["outcome"]) for e in log] == [
            (1, 500, "retrying"), (2, 500, "retrying"), (3, 200, "delivered")]


def test_a_receiver_that_never_answers_does_not_delay_other_jobs(api: Api) -> None:
    with Receiver() as receiver:
        stuck = api.run("demo.sleep", {"seconds": 0}, notify={"url": receiver.url("/hang")})
        eventually(lambda: receiver.at("/hang"), what="the delivery to reach the receiver")
        others = [api.run("demo.sleep", {"seconds": 0})["name"] for _ in range(4)]
        assert all(api.wait(name)["metadata"]["state"] == "SUCCEEDED" for name in others)
        # ...all while the stuck delivery's first attempt had not even concluded.
        assert deliveries(api, stuck["name"]) == []
        assert api.get(stuck["name"])["done"] is True


def test_a_private_address_is_refused_at_submission(api: Api) -> None:
    answer = api.http.post(f"{api.base}/v1/projects/{api.project}/jobs/demo.sleep:run",
                           json={"input": {"seconds": 0},
                                 "notify": {"url": "http://10.0.0.1/hook"}}, timeout=10)
    assert answer.status_code == 400
    assert "private" in answer.json()["error"]["message"]
    listed = api.http.get(f"{api.base}/v1/projects/{api.project}/operations", timeout=10)
    assert listed.json() == {"operations": []}


def test_a_consumer_group_sees_every_transition_of_a_job_in_order(api: Api,
                                                                   stack: Stack) -> None:
    client = redis_client(stack.redis_url)
    stream = Keys(stack.prefix).events(api.project)
    client.xgroup_create(stream, "auditors", id="$", mkstream=True)
    gate = uuid.uuid4().hex
    name = api.run("test.steps", {"gate": gate, "steps": 2})["name"]
    open_gate(stack, gate, times=2)
    api.wait(name)
    seen: list[str] = []

    def read() -> bool:
        for _, entries in client.xreadgroup("auditors", "a1", {stream: ">"}, count=100) or []:
            for entry_id, fields in entries:
                if fields["id"] == name.rsplit("/", 1)[1]:
                    seen.append(fields["event"])
                client.xack(stream, "auditors", entry_id)
        return "succeed" in seen

    eventually(read, what="the group to read the job's end")
    assert seen == ["create", "start", "progress", "progress", "succeed"]
    assert client.xpending(stream, "auditors")["pending"] == 0
    client.close()


def events_of(response: requests.Response) -> Iterator[dict[str, Any]]:
    """The events of a server-sent stream as they arrive, until the server ends it."""
    fields: dict[str, str] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line and not line.startswith(":"):
            key, _, value = line.partition(": ")
            fields[key] = value
        elif not line and fields:
            yield {**fields, "data": json.loads(fields["data"])}
            fields = {}


def test_a_watch_streams_to_the_end_and_resumes_from_last_event_id(api: Api,
                                                                   stack: Stack) -> None:
    gate = uuid.uuid4().hex
    name = api.run("test.steps", {"gate": gate, "steps": 3})["name"]
    api.state_becomes(name, "RUNNING")
    with api.http.get(f"{api.base}/v1/{name}:watch", stream=True, timeout=30) as watch:
        assert watch.headers["Content-Type"].startswith("text/event-stream")
        stream = events_of(watch)
        events = [next(stream)]
        for _ in range(3):  # each step happens only once the last one was seen live
            open_gate(stack, gate)
            events.append(next(stream))
        events += list(stream)  # the end
    assert [e["event"] for e in events] == ["snapshot", "progress", "progress", "progress",
                                            "succeed"]
    assert [e["data"]["metadata"].get("progressPercent") for e in events[1:4]] == [33, 66, 100]
    assert events[-1]["data"]["done"] is True
    with api.http.get(f"{api.base}/v1/{name}:watch", stream=True, timeout=30,
                      headers={"Last-Event-ID": events[1]["id"]}) as again:
        resumed = list(events_of(again))
    assert [(e["id"], e["event"]) for e in resumed] == [(e["id"], e["event"]) for e in events[2:]]
