"""The broker connection of every opqueue process: kombu's, keeping its transport at failover.

A broker URL may name several brokers (`url;url;...`): in sentinel mode, every sentinel of
the store. When kombu cannot connect, it moves on to the next URL (`Connection.switch`)
and takes the transport from that URL's scheme, dropping the one it was given: after the
first failover the API published through kombu's own Sentinel channel (no `capturing`: a
500 for every submission) and the workers consumed through it (no atomic take, landing
lists unseen). Here the transport a connection was given serves every one of its URLs,
which are all of one kind: the sentinels of one deployment, or the nodes of one broker.
Celery's pool (`app.pool`) makes its connections with `Connection.Pool`: they keep theirs too.
"""

from __future__ import annotations

from typing import Any

from celery.app.amqp import AMQP
from kombu.connection import Connection, ConnectionPool, PooledConnection


class BrokerConnection(Connection):
    """kombu's connection, on the transport it was given whichever of its URLs it is on."""

    def switch(self, conn_str: str) -> None:
        transport = self.transport_cls
        super().switch(conn_str)  # type: ignore[no-untyped-call]
        self.transport_cls = transport

    def Pool(self, limit: int | None = None, **kwargs: Any) -> BrokerConnectionPool:  # noqa: N802
        return BrokerConnectionPool(self, limit=limit, **kwargs)  # type: ignore[no-untyped-call]


class PooledBrokerConnection(BrokerConnection, PooledConnection):
    """A `BrokerConnection` of a pool."""


class BrokerConnectionPool(ConnectionPool):
    """kombu's pool of connections, of `PooledBrokerConnection`s."""

    def new(self) -> PooledBrokerConnection:
        info = dict(self.connection._info(resolve=False))
        return PooledBrokerConnection(self, **info)  # type: ignore[no-untyped-call]


class BrokerAMQP(AMQP):  # type: ignore[misc]
    """Celery's messaging part, connecting with `BrokerConnection`."""

    Connection = BrokerConnection
