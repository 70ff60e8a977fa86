"""Putting a lost job's message back on its queue.

Only the Redis transport keeps unacknowledged messages where we can reach them: a hash
of the messages in flight, keyed by delivery tag, and an index of those tags scored by
when they were taken. Other brokers (AMQP) redeliver by themselves when a consumer's
connection drops. Only kombu's own, prefix-aware client commands are used.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InFlight:
    """A message some consumer took and has not acknowledged."""

    tag: str
    task_id: str
    project: str


def redeliver(celery: Any, task_id: str) -> bool:
    """Put the in-flight message of task `task_id` back at the head of its queue.

    Returns False if there is no such message (True for brokers that redeliver by
    themselves).
    """
    with celery.connection_for_write() as connection:
        qos = _qos(connection)
        if qos is None:
            return True
        for message in _in_flight(connection.default_channel, max_taken_at=None):
            if message.task_id == task_id:
                qos.restore_by_tag(message.tag, leftmost=True)
                return True
        return False


def stranded(celery: Any, older_than: float) -> list[InFlight]:
    """Messages taken more than `older_than` seconds ago and still not acknowledged."""
    with celery.connection_for_write() as connection:
        if _qos(connection) is None:
            return []
        return list(_in_flight(connection.default_channel, time.time() - older_than))


def restore(celery: Any, message: InFlight) -> None:
    """Put an in-flight message back at the head of its queue (a no-op if it is gone)."""
    with celery.connection_for_write() as connection:
        qos = _qos(connection)
        if qos is not None:
            qos.restore_by_tag(message.tag, leftmost=True)


def _qos(connection: Any) -> Any:
    qos = getattr(connection.default_channel, "qos", None)
    return qos if hasattr(qos, "restore_by_tag") else None


def _in_flight(channel: Any, max_taken_at: float | None) -> Iterator[InFlight]:
    client = channel.client
    tags = (client.zrange(channel.unacked_index_key, 0, -1) if max_taken_at is None else
            client.zrange(channel.unacked_index_key, 0, max_taken_at, byscore=True))
    for tag in tags:
        payload = client.hget(channel.unacked_key, tag)
        if not payload:
            continue
        message = json.loads(payload)[0]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        kwargs = json.loads(body)[1]
        yield InFlight(_text(tag), str(message.get("headers", {}).get("id", "")),
                       str(kwargs.get("project", "")))


def _text(value: bytes | str) -> str:
    """kombu's Redis client answers in bytes."""
    return value.decode() if isinstance(value, bytes) else value
