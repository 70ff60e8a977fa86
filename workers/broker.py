"""Putting a lost job's message back on its queue."""

from __future__ import annotations

import json
from typing import Any


def redeliver(celery: Any, task_id: str) -> bool:
    """Put the unacknowledged message of task `task_id` back at the head of its queue.

    Returns False if there is no such message. Only the Redis transport keeps
    unacknowledged messages where we can reach them (a hash of the messages in flight,
    keyed by delivery tag, and an index of those tags); other brokers (AMQP) redeliver by
    themselves when a consumer's connection drops. Only kombu's own, prefix-aware client
    commands are used.
    """
    with celery.connection_for_write() as connection:
        channel = connection.default_channel
        qos = getattr(channel, "qos", None)
        if qos is None or not hasattr(qos, "restore_by_tag"):
            return True
        client = channel.client
        for tag in client.zrange(channel.unacked_index_key, 0, -1):
            payload = client.hget(channel.unacked_key, tag)
            if payload and json.loads(payload)[0].get("headers", {}).get("id") == task_id:
                qos.restore_by_tag(tag, leftmost=True)
                return True
        return False
