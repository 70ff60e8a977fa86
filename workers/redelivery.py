"""Putting a lost job's message back on its queue.

Only the Redis transport keeps taken messages where we can reach them: a hash of the
messages in flight, keyed by delivery tag, and an index of those tags scored by when they
were taken; and, with workers/transport.py, each queue's landing list of messages taken
and not yet recorded in that hash. Other brokers (AMQP) redeliver by themselves when a
consumer's connection drops.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class InFlight:
    """A message some consumer took and has not acknowledged; `eta` (epoch seconds) when its
    task is to wait until then (a retry's countdown)."""

    tag: str
    task_id: str
    project: str
    eta: float | None = None


@dataclass(frozen=True)
class Landed:
    """A message some worker took off `queue` and had not recorded yet, as taken."""

    queue: str
    payload: str
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
    """Put an in-flight message back on its queue (a no-op if it is gone)."""
    with celery.connection_for_write() as connection:
        qos = _qos(connection)
        if qos is not None:
            qos.restore_by_tag(message.tag, leftmost=True)


def landed(celery: Any, queues: Iterable[str]) -> list[Landed]:
    """Messages on the landing lists of `queues` (none unless the transport keeps them)."""
    with celery.connection_for_write() as connection:
        channel = connection.default_channel
        if not hasattr(channel, "landed"):
            return []
        return [Landed(queue, payload, *_task(_json(payload)))
                for queue in queues for payload in channel.landed(queue)]


def return_landed(celery: Any, message: Landed) -> bool:
    """Put a landed message back at the head of its queue; False if it has moved on."""
    with celery.connection_for_write() as connection:
        return bool(connection.default_channel.return_landed(message.queue, message.payload))


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
        record = _json(payload)
        message = record[0] if isinstance(record, list) else None
        yield InFlight(_text(tag), *_task(message), eta=_eta(message))


def _json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _eta(message: Any) -> float | None:
    """When a Celery task message's task is due, if it has a countdown."""
    try:
        return datetime.fromisoformat(message["headers"]["eta"]).timestamp()
    except (TypeError, KeyError, ValueError):
        return None


def _task(message: Any) -> tuple[str, str]:
    """The task id and project of a Celery task message as kombu's Redis transport keeps
    it; empty for what is not one (left for its consumer to refuse)."""
    try:
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        kwargs = json.loads(body)[1]
        return str(message.get("headers", {}).get("id", "")), str(kwargs.get("project", ""))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "", ""


def _text(value: bytes | str) -> str:
    """kombu's Redis client answers in bytes."""
    return value.decode() if isinstance(value, bytes) else value
