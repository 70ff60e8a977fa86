"""Publishing task messages to a real RabbitMQ with batched publisher confirms
(workers/confirms.py), through the dispatcher the API and the relays use."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from amqp.exceptions import MessageNacked
from kombu import Connection, Producer, Queue

from core.config import Settings
from core.task_outbox import Submission
from tests.stack import rabbitmq_vhost, rabbitmqctl
from workers.confirms import ConfirmingTransport
from workers.dispatch import Dispatcher


@pytest.fixture
def connection(rabbitmq: str) -> Iterator[Connection]:
    with Connection(rabbitmq, transport=ConfirmingTransport) as connection:
        yield connection


def declared(connection: Connection, **arguments: object) -> Queue:
    """A new queue of the test's own (quorum unless `arguments` say otherwise)."""
    queue = Queue(f"confirms-{uuid.uuid4().hex[:8]}", durable=True, queue_arguments={
        "x-queue-type": "quorum", **arguments})
    queue(connection.default_channel).declare()
    return queue


def depth(connection: Connection, queue: Queue) -> int:
    with connection.channel() as channel:
        return int(queue(channel).queue_declare(passive=True).message_count)


def publish(connection: Connection, queue: Queue, count: int) -> None:
    producer = Producer(connection.default_channel)
    with producer.batch(max_size=count):
        for n in range(count):
            producer.publish({"n": n}, routing_key=queue.name, delivery_mode=2)


def test_a_batch_is_confirmed_whole_and_every_message_is_queued(
        connection: Connection) -> None:
    queue = declared(connection)
    publish(connection, queue, 50)
    publish(connection, queue, 1)
    assert depth(connection, queue) == 51
    queue(connection.default_channel).delete()


def test_a_message_the_broker_refuses_fails_its_batch_and_the_channel_goes_on(
        connection: Connection) -> None:
    # A full queue that rejects publishes: RabbitMQ nacks what does not fit (a classic
    # queue: a quorum queue enforces its length only approximately).
    full = declared(connection, **{"x-queue-type": "classic", "x-max-length": 2,
                                   "x-overflow": "reject-publish"})
    with pytest.raises(MessageNacked):
        publish(connection, full, 3)
    roomy = declared(connection)
    publish(connection, roomy, 3)
    assert (depth(connection, full), depth(connection, roomy)) == (2, 3)
    for queue in (full, roomy):
        queue(connection.default_channel).delete()


def test_the_dispatcher_publishes_again_after_the_broker_dropped_its_connection(
        rabbitmq: str) -> None:
    # A virtual host of the test's own: dropping the session's would cut the other
    # deployments' connections too.
    with rabbitmq_vhost() as url:
        settings = Settings.from_env({"OPQUEUE_BROKER_URL": url})
        dispatcher = Dispatcher.from_settings(settings)
        jobs = [Submission("p", uuid.uuid4().hex, "demo.sleep", {"seconds": 0}, 1.0)
                for _ in range(3)]
        dispatcher.enqueue_many(jobs[:1])  # connects, declares the queue
        rabbitmqctl("close_all_connections", "-p", url.rsplit("/", 1)[1], "a test drops them")
        dispatcher.enqueue_many(jobs[1:])  # its pooled connection is dead: a fresh one
        with Connection(url) as connection:
            assert depth(connection, Queue(settings.queue)) == 3
