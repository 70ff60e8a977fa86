"""The broker transports (workers/transport.py) against a real Redis.

A message taken off its queue is always somewhere in Redis: on the queue, on the queue's
landing list, or among kombu's unacknowledged messages. The deployment's death-at-each-
instant cases are in test_faults.py; these check the steps themselves. The API builds the
messages the store queues with their operations exactly as it would publish them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Producer, Queue

from core.connection import redis_client
from core.task_outbox import Submission
from tests.stack import Stack
from workers.dispatch import Dispatcher
from workers.transport import Channel, WorkerTransport


@dataclass
class Broker:
    """A private corner of the stack's Redis, seen through kombu and through redis-py."""

    url: str
    prefix: str
    redis: redis.Redis
    taken: list[Any] = field(default_factory=list)

    def options(self) -> dict[str, Any]:
        return {"global_keyprefix": self.prefix, "priority_steps": [0]}

    def publish(self, queue: str, body: Any) -> None:
        with Connection(self.url, transport_options=self.options()) as connection:
            Producer(connection.channel()).publish(body, routing_key=queue, declare=[Queue(queue)])

    def where(self, queue: str) -> dict[str, int]:
        """How many messages are on `queue`, its landing list and unacknowledged."""
        return {"queue": int(self.redis.llen(self.prefix + queue)),
                "landing": int(self.redis.llen(f"{self.prefix}{queue}:landing")),
                "unacked": int(self.redis.hlen(f"{self.prefix}unacked"))}

    def consume(self, queues: list[str], transport: type = WorkerTransport,
                deliveries: int = 1) -> None:
        """Take `deliveries` messages from `queues`, checking where each is when delivered."""
        with Connection(self.url, transport=transport,
                        transport_options=self.options()) as connection:
            channel = connection.channel()
            channel.basic_qos(0, 1, False)

            def on_message(body: Any, message: Any) -> None:
                self.taken.append((body, {queue: self.where(queue) for queue in queues}))
                message.ack()

            Consumer(channel, [Queue(queue) for queue in queues], callbacks=[on_message]).consume()
            while len(self.taken) < deliveries:
                connection.drain_events(timeout=10)


@pytest.fixture
def broker(stack: Stack) -> Iterator[Broker]:
    client = redis_client(stack.redis_url)
    found = Broker(stack.redis_url, f"{stack.prefix}:transport-{uuid.uuid4().hex[:8]}:", client)
    yield found
    for key in client.scan_iter(match=f"{found.prefix}*"):
        client.delete(key)
    client.close()


def test_a_taken_message_is_recorded_as_unacknowledged_in_the_same_step(broker: Broker) -> None:
    broker.publish("jobs", {"n": 1})
    broker.consume(["jobs"])
    assert broker.taken == [({"n": 1}, {"jobs": {"queue": 0, "landing": 0, "unacked": 1}})]
    assert broker.where("jobs") == {"queue": 0, "landing": 0, "unacked": 0}


def test_a_payload_that_is_no_message_is_dropped_not_taken_again(broker: Broker) -> None:
    broker.redis.lpush(broker.prefix + "jobs", "not a kombu message")
    broker.publish("jobs", {"n": 1})
    broker.consume(["jobs"])
    assert [body for body, _ in broker.taken] == [{"n": 1}]
    assert broker.where("jobs") == {"queue": 0, "landing": 0, "unacked": 0}


class _Stalls(Channel):
    """A taker so slow to record its message that a supervisor put it back meanwhile."""

    stalled = False

    def _accept(self, landing: str, payload: str, message: dict[str, Any]) -> bool:
        if not _Stalls.stalled:
            _Stalls.stalled = True
            assert self.landed("jobs") == [payload]
            assert self.return_landed("jobs", payload)
            assert not self.return_landed("jobs", payload)  # it has moved on: only once
        return super()._accept(landing, payload, message)


class _StallingTransport(WorkerTransport):
    Channel = _Stalls


def test_a_message_put_back_while_its_taker_stalled_is_delivered_once(broker: Broker) -> None:
    broker.publish("jobs", {"n": 1})
    broker.publish("jobs", {"n": 2})
    broker.consume(["jobs"], transport=_StallingTransport, deliveries=2)
    assert _Stalls.stalled
    # The stalled take of n=1 was dropped; n=1 went back to the head of the queue.
    assert [body for body, _ in broker.taken] == [{"n": 1}, {"n": 2}]
    assert broker.where("jobs") == {"queue": 0, "landing": 0, "unacked": 0}


def test_a_channel_consuming_several_queues_takes_messages_kombus_way(broker: Broker) -> None:
    broker.publish("a", {"from": "a"})
    broker.publish("b", {"from": "b"})
    broker.consume(["a", "b"], deliveries=2)
    assert sorted(body["from"] for body, _ in broker.taken) == ["a", "b"]
    for _, where in broker.taken:
        assert where["a"]["landing"] == where["b"]["landing"] == 0
    assert broker.where("a") == broker.where("b") == {"queue": 0, "landing": 0, "unacked": 0}


def test_messages_for_the_store_are_what_publishing_would_queue(stack: Stack,
                                                                broker: Broker) -> None:
    settings = replace(stack.settings, key_prefix=broker.prefix.rstrip(":"), queue="jobs")
    dispatcher = Dispatcher.from_settings(settings)
    assert dispatcher.shares_store
    submissions = [Submission("demo", str(uuid.uuid4()), "demo.sleep", {"seconds": n}, 5.0)
                   for n in (1, 2)]
    dispatcher.enqueue_many(submissions)
    queue_key = f"{broker.prefix}broker:jobs"
    published = list(reversed(broker.redis.lrange(queue_key, 0, -1)))
    built = dispatcher.messages(submissions)
    assert [message.queue_key for message in built] == [queue_key, queue_key]
    assert broker.redis.llen(queue_key) == 2  # building sent nothing

    def without_tag(payload: str) -> dict[str, Any]:
        message = json.loads(payload)
        del message["properties"]["delivery_tag"]  # a fresh one per message
        return message

    assert [without_tag(message.payload) for message in built] == \
        [without_tag(payload) for payload in published]
