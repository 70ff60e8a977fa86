"""Redis clients, with reconnect-and-retry on connection blips, and the Lua scripts they run.

A store client reaches one Redis (`REDIS_URL`), in sentinel mode the primary the
sentinels name, found again after a failover, and in cluster mode every shard of the
Redis Cluster `REDIS_URL` is a node of, following its slots as they move.
"""

from __future__ import annotations

from contextlib import suppress
from importlib import resources
from typing import Any, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.connection import parse_url
from redis.exceptions import (
    ClusterDownError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.retry import Retry
from redis.sentinel import Sentinel

from core.config import Settings

# What a store that cannot be reached raises: a lost connection, a failover under way (on a
# cluster: a shard without a primary yet, or slots not served for the moment).
UNREACHABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, ClusterDownError, SlotNotCoveredError,
    TryAgainError)

_CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 2.0,
    "socket_keepalive": True,
    "health_check_interval": 30,
    "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
}


def redis_client(url: str) -> redis.Redis:
    """A client of the Redis at `url`, decoding responses to str, retrying briefly when the
    connection drops."""
    return redis.Redis.from_url(url, retry=_blip_retry(), **_CLIENT_OPTIONS)


def store_client(settings: Settings) -> redis.Redis:
    """A client of the store's primary: the Redis at `REDIS_URL`, or in sentinel mode the
    primary the sentinels name now, asked again on every new connection, so that the client
    follows a failover."""
    # One connection per request thread at most, and some for the listener and timers:
    # redis-py's default cap (100) is below the web threads, and past it a call fails.
    pool_size = {"max_connections": max(settings.web_threads, settings.grpc_threads) + 16}
    if settings.redis_mode == "cluster":
        # Typed as a Redis: a RedisCluster answers the same commands, pipelines (across
        # shards) and scripts (all keys of one call on one shard: core/keyspace.py).
        return cast(redis.Redis, RedisCluster.from_url(
            settings.redis_url, retry=_blip_retry(), **_CLIENT_OPTIONS, **pool_size))
    if settings.redis_mode != "sentinel":
        return redis.Redis.from_url(settings.redis_url, retry=_blip_retry(),
                                    **_CLIENT_OPTIONS, **pool_size)
    # The URL still says which database, user and password; its host is not used.
    params = {name: value for name, value in parse_url(settings.redis_url).items()
              if name in ("db", "username", "password")}
    sentinels = Sentinel([sentinel_address(entry) for entry in settings.sentinels],
                         sentinel_kwargs={"socket_connect_timeout": 2.0})
    primary: redis.Redis = sentinels.master_for(
        settings.sentinel_master, redis_class=redis.Redis, retry=_blip_retry(),
        **_CLIENT_OPTIONS, **params, **pool_size)
    return primary


def primary_for(client: redis.Redis, key: str) -> redis.Redis:
    """A client of the primary serving `key`: `client` itself, or on a cluster the client of
    the node serving the key's slot now (so that a WAIT runs on the connection that wrote)."""
    cluster: Any = client
    if isinstance(cluster, RedisCluster):
        node_client: redis.Redis = cluster.get_redis_connection(cluster.get_node_from_key(key))
        return node_client
    return client


def forget_primary(client: redis.Redis) -> None:
    """After a failover: drop the connections to a primary that is one no more, and on a
    cluster learn anew which node serves which slots."""
    cluster: Any = client
    if isinstance(cluster, RedisCluster):
        with suppress(redis.RedisError, RedisClusterException):  # the next call tries again
            cluster.nodes_manager.initialize()
        return
    client.connection_pool.disconnect(inuse_connections=False)


def _blip_retry() -> Retry:
    # Under a second of retries: a dropped connection, not an outage. Longer patience
    # (workers riding out a failover) is the store's, around whole calls, so that each
    # attempt takes a new connection and, in sentinel mode, asks for the primary again.
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3)


def sentinel_address(entry: str) -> tuple[str, int]:
    """`host:port` of one sentinel, as (host, port)."""
    host, _, port = entry.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"OPQUEUE_SENTINELS entry {entry!r} is not host:port")
    return host.strip("[]"), int(port)


def register_lua(client: redis.Redis, package: str, name: str) -> Script:
    """Script `name` of package `package`'s `lua/` directory, registered on `client`."""
    return client.register_script(resources.files(package).joinpath("lua", name).read_text())
