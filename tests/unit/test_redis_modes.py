"""Choosing how the store is deployed: settings, clients and broker transports per mode."""

from __future__ import annotations

import pytest
from kombu.transport import redis as kombu_redis
from kombu.utils.imports import symbol_by_name
from redis.sentinel import SentinelConnectionPool

from core.config import Settings
from core.connection import sentinel_address, store_client
from workers.celery_app import OpqueueCelery
from workers.transport import Channel, PublishingChannel, transport_for

SENTINEL_ENV = {"OPQUEUE_REDIS_MODE": "sentinel", "OPQUEUE_SENTINELS": "10.0.0.5:26379,s2:26380",
                "OPQUEUE_SENTINEL_MASTER": "opqueue", "REDIS_URL": "redis://u:pw@ignored/3"}


@pytest.mark.parametrize(("env", "says"), [
    ({"OPQUEUE_REDIS_MODE": "sentinel"}, "OPQUEUE_SENTINELS"),
    ({**SENTINEL_ENV, "OPQUEUE_SENTINEL_MASTER": ""}, "OPQUEUE_SENTINEL_MASTER"),
    ({"OPQUEUE_REDIS_MODE": "cluster"}, "cluster needs OPQUEUE_BROKER_URL"),
    ({"OPQUEUE_REDIS_MODE": "cluster", "REDIS_URL": "redis://node:7000/0",
      "OPQUEUE_BROKER_URL": "redis://node:7000/0"}, "cluster needs OPQUEUE_BROKER_URL"),
    ({"OPQUEUE_REDIS_MODE": "shards"}, "is not one of standalone, sentinel, cluster"),
    ({"OPQUEUE_KEY_PREFIX": "op{x}"}, "must not contain braces"),
    ({"OPQUEUE_STORE_MIN_REPLICAS": "-1"}, "0 or more"),
])
def test_an_incomplete_or_unknown_mode_stops_startup_saying_what_to_set(
        env: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Settings.from_env(env)


def test_in_sentinel_mode_the_broker_is_the_primary_behind_the_same_sentinels() -> None:
    settings = Settings.from_env(SENTINEL_ENV)
    assert settings.effective_broker_url == \
        "sentinel://u:pw@10.0.0.5:26379/3;sentinel://u:pw@s2:26380/3"
    assert settings.redis_broker
    assert settings.broker_shares_store
    assert transport_for(settings, "Worker") == "workers.transport:SentinelWorkerTransport"
    own = Settings.from_env({**SENTINEL_ENV, "OPQUEUE_BROKER_URL": "amqp://guest@127.0.0.1//"})
    assert not own.broker_shares_store
    assert transport_for(own, "Worker") is None  # kombu's own AMQP transport


@pytest.mark.parametrize("role", ["Worker", "Publishing"])
@pytest.mark.parametrize("env", [{}, SENTINEL_ENV])
def test_each_redis_mode_has_a_transport_for_each_role(env: dict[str, str], role: str) -> None:
    path = transport_for(Settings.from_env(env), role)
    assert path is not None
    transport = symbol_by_name(path)
    assert issubclass(transport, kombu_redis.SentinelTransport) == bool(env)
    ours = {"Worker": Channel, "Publishing": PublishingChannel}[role]
    assert issubclass(transport.Channel, ours)
    assert issubclass(transport.Channel, kombu_redis.SentinelChannel) == bool(env)


def test_a_sentinel_mode_client_asks_the_sentinels_for_the_primary() -> None:
    client = store_client(Settings.from_env(SENTINEL_ENV))
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "opqueue"
    asked = [sentinel.connection_pool.connection_kwargs
             for sentinel in pool.sentinel_manager.sentinels]
    assert [(found["host"], found["port"]) for found in asked] == \
        [("10.0.0.5", 26379), ("s2", 26380)]
    assert pool.connection_kwargs["db"] == 3
    assert pool.connection_kwargs["password"] == "pw"
    client.close()


@pytest.mark.parametrize("entry", ["s1", "s1:", ":26379", "s1:port"])
def test_a_sentinel_address_must_be_host_and_port(entry: str) -> None:
    with pytest.raises(ValueError, match="is not host:port"):
        sentinel_address(entry)


@pytest.mark.parametrize("role", ["Worker", "Publishing"])
def test_a_broker_connection_keeps_our_transport_when_kombu_moves_to_the_next_sentinel(
        role: str) -> None:
    settings = Settings.from_env(SENTINEL_ENV)
    celery = OpqueueCelery(settings)
    celery.conf.broker_transport = transport_for(settings, role)
    for connection in (celery.connection_for_read(), celery.pool.acquire()):
        connection.maybe_switch_next()  # what kombu does when it cannot connect
        assert (connection.hostname, connection.port) == ("s2", 26380)
        assert connection.transport_cls == transport_for(settings, role)
        connection.release()
    celery.close()
