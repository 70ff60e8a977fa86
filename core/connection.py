"""Redis clients, with reconnect-and-retry on connection blips, and the Lua scripts they run."""

from __future__ import annotations

from importlib import resources

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry


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


def register_lua(client: redis.Redis, package: str, name: str) -> Script:
    """Script `name` of package `package`'s `lua/` directory, registered on `client`."""
    return client.register_script(resources.files(package).joinpath("lua", name).read_text())
