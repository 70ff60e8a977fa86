"""The Redis broker transports: the workers', made to lose no message, and the API's.

Taking a message (workers). kombu takes a message with `BRPOP` and only then records it as
unacknowledged: a node killed between the two loses the message, and its operation stays
PENDING for ever. Here a worker that consumes one queue takes each message with `BLMOVE`
onto that queue's landing list, then moves it from there into kombu's unacknowledged
hash in one script. At every instant the message is in exactly one place in Redis; one
left on a landing list (its taker died) goes back on its queue by the supervisor
(workers/supervisor.py). A channel consuming several queues, or without acknowledgements,
takes messages kombu's way, as does one on a Redis older than 6.2 (no `BLMOVE`).

Teardown (workers). When the broker connection drops while a worker holds unacknowledged
messages, kombu restores them as it closes the channel, through a connection whose client
it has already dropped. That raised AttributeError, which Celery treats as unrecoverable:
the worker exited instead of reconnecting. Raising a connection error there instead lets
Celery do what it does for any lost broker: reconnect; the leases then recover the held
jobs.

Publishing (API). kombu builds a new redis-py client (and its table of ~170 response
callbacks) for every publish; that was a third of the cost of queueing one job. The API's
channel keeps one (thread-safe, drawing connections from the channel's pool, as before),
and can keep the messages it would publish instead of sending them, for the store to
queue with their operations (workers/dispatch.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from time import monotonic, time
from typing import Any
from urllib.parse import urlsplit

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from core.config import Settings
from core.connection import register_lua

log = logging.getLogger(__name__)

# A queue's landing list: messages taken off the queue and not yet recorded as unacknowledged.
LANDING_SUFFIX = ":landing"


@dataclass(frozen=True)
class TaskMessage:
    """A job's task message as the Redis broker keeps it: the queue's key and the payload."""

    queue_key: str
    payload: str


class _QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.accepted_tag == delivery_tag:
            # Already recorded as unacknowledged by the take itself: only the local
            # bookkeeping remains (kombu's own append would write both keys again).
            self.channel.accepted_tag = None
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)


class Channel(kombu_redis.Channel):
    """The workers' channel: takes messages atomically and fails cleanly at teardown."""

    QoS = _QoS
    accepted_tag: str | None = None  # the message whose take also recorded it as unacked
    _taking: tuple[str, str] | None = None  # (queue, landing list) of an atomic take in flight

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._acked_queues: set[str] = set()
        super().__init__(*args, **kwargs)

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._acked_queues.discard(queue)
        else:
            self._acked_queues.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection is already closed")
        return super()._connparams(asynchronous)

    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        keys = {self._q_for_pri(queue, priority)
                for queue in queues for priority in self.priority_steps}
        if len(queues) != 1 or len(keys) != 1 or queues[0] not in self._acked_queues \
                or not self.ack_emulation or not self._can_move:
            self._taking = None
            super()._brpop_start(timeout)
            return
        source = keys.pop()
        self._taking = (queues[0], source + LANDING_SUFFIX)
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        prefix = self.global_keyprefix
        self.client.connection.send_command(
            "BLMOVE", prefix + source, prefix + self._taking[1], "RIGHT", "LEFT",
            (self.brpop_timeout if timeout is None else timeout) or 0)

    def _brpop_read(self, **options: Any) -> bool:
        if self._taking is None:
            return bool(super()._brpop_read(**options))
        queue, landing = self._taking
        try:
            try:
                item = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # the next poll reconnects, as kombu does
                raise
            if not item:
                raise virtual.Empty()
            payload = bytes_to_str(item)
            message = self._parse(landing, payload)
            if message is None or not self._accept(landing, payload, message):
                raise virtual.Empty()  # not a message, or held too long: put back meanwhile
            self.connection._deliver(message, queue)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self.accepted_tag = None  # its append has run, inside `_deliver`
            self._flush_brpop_reauth()

    def _poll_error(self, type: str, **options: Any) -> None:
        if type == "BRPOP" and self._taking is not None:
            type = "BLMOVE"  # what is really in flight
        super()._poll_error(type, **options)

    def _parse(self, landing: str, payload: str) -> dict[str, Any] | None:
        """The taken message; None (and dropped, as kombu's `BRPOP` would) if it is not one
        a consumer could ever take, so that it does not come back after every lease."""
        try:
            message: dict[str, Any] = loads(payload)
            properties = message["properties"]
            if {"exchange", "routing_key"} <= properties["delivery_info"].keys() \
                    and properties["delivery_tag"]:
                return message
        except (ValueError, TypeError, KeyError, AttributeError):
            pass
        self._scripts_client.lrem(self.global_keyprefix + landing, 1, payload)
        log.error("dropped a message of %d bytes from %s: not a kombu message",
                  len(payload), landing)
        return None

    def _accept(self, landing: str, payload: str, message: dict[str, Any]) -> bool:
        """Move a taken message from its landing list to the unacknowledged ones."""
        properties = message["properties"]
        info = properties["delivery_info"]
        tag = properties["delivery_tag"]
        prefix = self.global_keyprefix
        accepted = self._accept_script(
            keys=[prefix + landing, prefix + self.unacked_key, prefix + self.unacked_index_key],
            args=[payload, tag, dumps([message, info["exchange"], info["routing_key"]]), time()])
        if accepted:
            self.accepted_tag = tag
        return bool(accepted)

    def landed(self, queue: str) -> list[str]:
        """Messages on `queue`'s landing list: taken off it and not yet recorded."""
        key = self.global_keyprefix + self._q_for_pri(queue, 0) + LANDING_SUFFIX
        return [bytes_to_str(item) for item in self._scripts_client.lrange(key, 0, -1)]

    def return_landed(self, queue: str, payload: str) -> bool:
        """Put a landed message back at the head of `queue`; False if it has moved on."""
        source = self.global_keyprefix + self._q_for_pri(queue, 0)
        return bool(self._return_script(keys=[source + LANDING_SUFFIX, source], args=[payload]))

    @cached_property
    def _can_move(self) -> bool:
        version = str(self._scripts_client.info("server").get("redis_version", "0"))
        if tuple(int(part) for part in version.split(".")[:2]) >= (6, 2):
            return True
        log.warning("Redis %s has no BLMOVE (6.2+): messages are taken kombu's way, and a "
                    "node killed while taking one can lose it", version)
        return False

    @cached_property
    def _scripts_client(self) -> redis.Redis:
        # Not kombu's prefixing client: it would prefix only the first key of a script.
        return redis.Redis(connection_pool=self.pool)

    @cached_property
    def _accept_script(self) -> Any:
        return register_lua(self._scripts_client, "workers", "accept.lua")

    @cached_property
    def _return_script(self) -> Any:
        return register_lua(self._scripts_client, "workers", "return_landed.lua")


class WorkerTransport(kombu_redis.Transport):
    """The Redis transport with `Channel`: what the workers consume through."""

    Channel = Channel


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """`Channel` on the primary the sentinels name, found again after a failover."""


class SentinelWorkerTransport(kombu_redis.SentinelTransport):
    """`WorkerTransport` through Redis Sentinel (`sentinel://` broker URLs)."""

    Channel = SentinelChannel


class PublishingChannel(kombu_redis.Channel):
    """kombu's Redis channel with one client for its publishes, able to keep the messages
    it would publish instead (`capturing`)."""

    _captured: list[TaskMessage] | None = None

    @contextmanager
    def capturing(self) -> Iterator[list[TaskMessage]]:
        """Keep what is published meanwhile, as it would have been queued, unsent."""
        captured: list[TaskMessage] = []
        self._captured = captured
        try:
            yield captured
        finally:
            self._captured = None

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        if self._captured is None:
            super()._put(queue, message, **kwargs)
            return
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        self._captured.append(TaskMessage(self.global_keyprefix + key, dumps(message)))

    @cached_property
    def _publish_client(self) -> Any:
        return super()._create_client(asynchronous=False)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous)
        return self._publish_client


class PublishingTransport(kombu_redis.Transport):
    """The Redis transport with `PublishingChannel`: what the API publishes through."""

    Channel = PublishingChannel


class SentinelPublishingChannel(PublishingChannel, kombu_redis.SentinelChannel):
    """`PublishingChannel` on the primary the sentinels name."""


class SentinelPublishingTransport(kombu_redis.SentinelTransport):
    """`PublishingTransport` through Redis Sentinel (`sentinel://` broker URLs)."""

    Channel = SentinelPublishingChannel


def transport_for(settings: Settings, role: str) -> str | None:
    """The import path of our transport for `role` ("Worker" or "Publishing") on the
    deployment's broker; None where kombu's own serves (RabbitMQ's workers, other brokers)."""
    if settings.rabbitmq_broker and role == "Publishing":
        return "workers.confirms:ConfirmingTransport"
    if not settings.redis_broker:
        return None
    sentinel = urlsplit(settings.effective_broker_url).scheme == "sentinel"
    return f"workers.transport:{'Sentinel' if sentinel else ''}{role}Transport"
