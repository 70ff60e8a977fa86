"""The Celery broker behind sentinels (issue #15), against a real Sentinel deployment.

The broker URL names every sentinel (`sentinel://a;sentinel://b;...`). When a connection
cannot be made (the primary is down), kombu fails over to the next URL with
`Connection.maybe_switch_next`. Each of our processes must keep its own transport through
that switch: the API's channel builds the messages the store queues, the workers' channel
takes messages atomically and finds those left on landing lists.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from core.config import Settings
from core.connection import store_client
from core.keyspace import Keys
from core.task_outbox import Submission
from tests.redis_deployments import SentinelDeployment, sentinel_deployment
from workers.celery_app import OpqueueCelery
from workers.dispatch import Dispatcher
from workers.transport import LANDING_SUFFIX, SentinelChannel, transport_for


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelDeployment]:
    with sentinel_deployment(tmp_path_factory.mktemp("sentinel-broker")) as deployment:
        yield deployment


@pytest.fixture
def settings(sentinels: SentinelDeployment) -> Iterator[Settings]:
    prefix = f"opqueue-test-{uuid.uuid4().hex[:10]}"
    settings = Settings.from_env({**sentinels.env, "OPQUEUE_KEY_PREFIX": prefix})
    yield settings
    client = store_client(settings)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def fail_over_once(celery: OpqueueCelery) -> None:
    """Do to the app's pooled broker connection what kombu does when it cannot connect:
    switch it to the next broker URL (the next sentinel)."""
    with celery.pool.acquire() as connection:
        first = connection.as_uri()
        connection.maybe_switch_next()
        assert connection.as_uri() != first  # it did move on to the next sentinel's URL


def test_the_api_keeps_building_messages_after_kombu_switches_sentinel(
        settings: Settings) -> None:
    dispatcher = Dispatcher.from_settings(settings)
    submission = Submission("demo", str(uuid.uuid4()), "demo.sleep", {"seconds": 0}, 10)
    try:
        fail_over_once(dispatcher.celery)
        messages = dispatcher.messages([submission])
        assert [message.queue_key for message in messages] == \
            [Keys(settings.key_prefix).broker_prefix() + settings.queue]
        # And publishing for real reaches the primary the sentinels name.
        dispatcher.enqueue_many([submission])
        client = store_client(settings)
        assert client.llen(messages[0].queue_key) == 1
        client.close()
    finally:
        dispatcher.celery.close()


def test_a_worker_keeps_its_channel_after_kombu_switches_sentinel(settings: Settings) -> None:
    celery = OpqueueCelery(settings)
    celery.conf.broker_transport = transport_for(settings, "Worker")
    queue = settings.queue
    landing = Keys(settings.key_prefix).broker_prefix() + queue + LANDING_SUFFIX
    client = store_client(settings)
    client.lpush(landing, "left by a worker that died taking it")
    client.close()
    with celery.connection_for_read() as connection:  # what a worker consumes through
        connection.maybe_switch_next()
        channel = connection.default_channel
        assert isinstance(channel, SentinelChannel)  # takes atomically, knows landing lists
        assert channel.landed(queue) == ["left by a worker that died taking it"]
