"""Redis clients built from settings, with reconnect-and-retry on connection blips."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from core.config import Settings
from core.keyspace import Keys
from core.store import OperationStore


def redis_client(url: str) -> redis.Redis:
    """A client decoding responses to str, retrying briefly when the connection drops."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2.0,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


def operation_store(settings: Settings, client: redis.Redis | None = None) -> OperationStore:
    """The operation store of this deployment."""
    return OperationStore(
        client if client is not None else redis_client(settings.redis_url),
        Keys(settings.key_prefix),
        settings.retention_seconds,
        settings.max_queued_per_project,
        settings.event_stream_max_length,
    )
