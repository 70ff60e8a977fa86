"""The Redis broker transport the workers use: kombu's, made to survive its own teardown.

When the broker connection drops while a worker holds unacknowledged messages, kombu
restores them as it closes the channel, through a connection whose client it has already
dropped. That raised AttributeError, which Celery treats as unrecoverable: the worker
exited instead of reconnecting. Raising a connection error there instead lets Celery do
what it does for any lost broker: reconnect; the leases then recover the held jobs.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class _Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection is already closed")
        return super()._connparams(asynchronous)  # type: ignore[no-untyped-call]


class WorkerTransport(kombu_redis.Transport):
    """kombu's Redis transport with `_Channel`."""

    Channel = _Channel
