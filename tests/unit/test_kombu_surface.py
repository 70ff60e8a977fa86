"""Every kombu name workers/transport.py, workers/redelivery.py and workers/broker_connection.py
rely on, as kombu 5.7 has it, and every py-amqp name workers/confirms.py relies on, as
py-amqp 5.4 has it.

The transport overrides kombu's Redis channel and uses its private members. A kombu that
renames or reshapes one of them must fail here, in CI, not in a worker taking messages.
When raising the kombu bound in pyproject.toml, re-read the overridden methods in
kombu/transport/redis.py and update this table with what the transport now relies on.
No Redis: the channel is built on fakeredis.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import amqp
import amqp.transport
import fakeredis
import kombu
import pytest
from kombu.connection import ConnectionPool, PooledConnection
from kombu.transport import pyamqp, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils import encoding
from kombu.utils import json as kombu_json

from workers.transport import WorkerTransport

# (where, name) → its signature, for the methods we override or call.
SIGNATURES: dict[tuple[Any, str], str] = {
    (kombu_redis.Channel, "__init__"): "(self, *args, **kwargs)",
    (kombu_redis.Channel, "basic_consume"): "(self, queue, *args, **kwargs)",
    (kombu_redis.Channel, "_connparams"): "(self, asynchronous=False)",
    (kombu_redis.Channel, "_brpop_start"): "(self, timeout=None)",
    (kombu_redis.Channel, "_brpop_read"): "(self, **options)",
    (kombu_redis.Channel, "_flush_brpop_reauth"): "(self)",
    (kombu_redis.Channel, "_poll_error"): "(self, type, **options)",
    (kombu_redis.Channel, "_put"): "(self, queue, message, **kwargs)",
    (kombu_redis.Channel, "_create_client"): "(self, asynchronous=False)",
    (kombu_redis.Channel, "_q_for_pri"): "(self, queue, pri)",
    (kombu_redis.Channel, "_get_message_priority"): "(self, message, reverse=False)",
    (kombu_redis.QoS, "append"): "(self, message, delivery_tag)",
    (kombu_redis.QoS, "restore_by_tag"): "(self, tag, client=None, leftmost=False)",
    (virtual.QoS, "append"): "(self, message, delivery_tag)",
    (virtual.Transport, "_deliver"): "(self, message, queue)",
    (encoding, "bytes_to_str"): "(s)",
    # workers/confirms.py: publishing in confirm mode, confirms read later.
    (amqp.Channel, "_basic_publish"): "(self, msg, exchange='', routing_key='', "
                                      "mandatory=False, immediate=False, timeout=None, "
                                      "confirm_timeout=None, argsig='Bssbb')",
    (amqp.Channel, "send_method"): "(self, sig, format=None, args=None, content=None, "
                                   "wait=None, callback=None, returns_tuple=False)",
    (amqp.Channel, "confirm_select"): "(self, nowait=False)",
    (amqp.Channel, "wait"): "(self, method, callback=None, timeout=None, returns_tuple=False)",
    (amqp.transport.TCPTransport, "write"): "(self, s)",  # which calls its `_write(s)`
    (kombu.Connection, "switch"): "(self, conn_str)",
    (kombu.Connection, "maybe_switch_next"): "(self)",
    (kombu.Connection, "Pool"): "(self, limit=None, **kwargs)",
    (kombu.Connection, "_info"): "(self, resolve=True)",
    (ConnectionPool, "new"): "(self)",
    (PooledConnection, "__init__"): "(self, pool, **kwargs)",
}
# Attributes of a live channel (most are set in its __init__), with their type.
CHANNEL_ATTRIBUTES: dict[str, type | tuple[type, ...]] = {
    "brpop_timeout": (int, float),
    "_brpop_sent_at": (type(None), float),
    "_in_poll": (bool, type(None)),
    "connection_errors": tuple,
    "active_queues": list,
    "priority_steps": list,
    "ack_emulation": bool,
    "global_keyprefix": str,
    "unacked_key": str,
    "unacked_index_key": str,
    "connection": WorkerTransport,
}


@pytest.mark.parametrize(("owner", "name"), list(SIGNATURES),
                         ids=[f"{getattr(owner, '__name__', owner)}.{name}"
                              for owner, name in SIGNATURES])
def test_kombu_has_each_method_with_the_signature_we_override_or_call(owner: Any,
                                                                      name: str) -> None:
    function: Callable[..., Any] | None = getattr(owner, name, None)
    assert function is not None, f"kombu no longer has {name}"
    assert str(inspect.signature(function)) == SIGNATURES[owner, name]


def test_kombu_json_takes_a_string_first() -> None:
    for function in (kombu_json.dumps, kombu_json.loads):
        assert next(iter(inspect.signature(function).parameters)) == "s"


def test_the_confirming_transport_uses_kombus_amqp_pieces() -> None:
    assert pyamqp.Transport.Connection is pyamqp.Connection
    assert issubclass(pyamqp.Connection, amqp.Connection)
    assert "basic_ack" in inspect.getsource(amqp.Channel._on_basic_ack)  # events we add to
    assert "_write = self.sock.sendall" in inspect.getsource(amqp.transport.TCPTransport)


def test_the_transports_use_kombus_redis_pieces() -> None:
    assert kombu_redis.Transport.Channel is kombu_redis.Channel
    assert issubclass(kombu_redis.QoS, virtual.QoS)
    assert issubclass(virtual.Empty, Exception)


@pytest.fixture
def channel() -> Iterator[Any]:
    """A worker channel of our transport, its Redis clients replaced by fakeredis."""
    fake = fakeredis.FakeRedis()
    with mock.patch.object(kombu_redis.Channel, "_create_client", return_value=fake):
        connection = kombu.Connection("redis://127.0.0.1:1/0", transport=WorkerTransport)
        try:
            yield connection.default_channel
        finally:
            connection.release()
            fake.close()


@pytest.mark.parametrize("name", list(CHANNEL_ATTRIBUTES))
def test_a_channel_has_each_attribute_we_read_or_set(channel: Any, name: str) -> None:
    assert hasattr(channel, name), f"kombu's channel no longer has {name}"
    assert isinstance(getattr(channel, name), CHANNEL_ATTRIBUTES[name])


def test_a_connection_names_its_transport_in_transport_cls() -> None:
    connection = kombu.Connection("redis://127.0.0.1:1/0", transport=WorkerTransport)
    assert connection.transport_cls is WorkerTransport
    assert issubclass(PooledConnection, kombu.Connection)


def test_a_channel_cycles_queues_and_pools_as_we_call_them(channel: Any) -> None:
    assert str(inspect.signature(channel._queue_cycle.consume)) == "(n)"
    assert channel.pool is not None
    assert channel.client is not None
    assert hasattr(channel.qos, "restore_by_tag")
