"""Redis clients, with reconnect-and-retry on connection blips, and the Lua scripts they run.

A store client reaches one Redis (`REDIS_URL`), or in sentinel mode the primary the
sentinels name, found again after a failover.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from core.config import Settings

_CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 2.0,
    "socket_keepalive": True,
    "health_check_interval": 30,
    "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
}


def _retry(patience: float) -> Retry:
    """Retries of a dropped connection: for under a second (a blip), or with `patience`,
    a second apart at most for about that many seconds (a primary failing over)."""
    if not patience:
        return Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3)
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=int(patience) + 4)


def redis_client(url: str, patience: float = 0.0) -> redis.Redis:
    """A client of the Redis at `url`, decoding responses to str, retrying when the
    connection drops (see `_retry`)."""
    return redis.Redis.from_url(url, retry=_retry(patience), **_CLIENT_OPTIONS)


def store_client(settings: Settings, *, patient: bool = False) -> redis.Redis:
    """A client of the store's primary. A `patient` client (workers) waits out an outage of
    `store_outage_seconds`; the API's answers UNAVAILABLE at once instead."""
    patience = settings.store_outage_seconds if patient else 0.0
    if settings.redis_mode != "sentinel":
        return redis_client(settings.redis_url, patience)
    # The URL still says which database, user and password; its host is not used.
    params = {name: value for name, value in parse_url(settings.redis_url).items()
              if name in ("db", "username", "password")}
    sentinels = Sentinel([sentinel_address(entry) for entry in settings.sentinels],
                         sentinel_kwargs={"socket_connect_timeout": 2.0})
    primary: redis.Redis = sentinels.master_for(
        settings.sentinel_master, redis_class=redis.Redis, retry=_retry(patience),
        **_CLIENT_OPTIONS, **params)
    return primary


def sentinel_address(entry: str) -> tuple[str, int]:
    """`host:port` of one sentinel, as (host, port)."""
    host, _, port = entry.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"OPQUEUE_SENTINELS entry {entry!r} is not host:port")
    return host.strip("[]"), int(port)


def register_lua(client: redis.Redis, package: str, name: str) -> Script:
    """Script `name` of package `package`'s `lua/` directory, registered on `client`."""
    return client.register_script(resources.files(package).joinpath("lua", name).read_text())
