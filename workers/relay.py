"""Publishing the task outbox (core/task_outbox.py) to the broker.

The API publishes the entries it has just stored (`publish`); a relay in every worker
node's supervisor publishes those left behind once due (`pump`). Either removes an entry
only after the broker confirmed its message (publisher confirms on RabbitMQ), so a process
killed anywhere in between leaves the entry for a relay to publish later.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from prometheus_client import Histogram

from core.task_outbox import Entry, TaskOutbox

if TYPE_CHECKING:  # the supervisor, which the Celery app imports, uses this module
    from workers.dispatch import Dispatcher

log = logging.getLogger(__name__)

# How long an entry waited in the outbox before its confirm came, where it was published:
# from just before the script that stored it (an upper bound) to the confirm. Buckets every
# 5 ms up to 60 ms tell whether the 99th percentile is within its 50 ms target.
OUTBOX_WAIT_SECONDS = Histogram(
    "opqueue_task_outbox_wait_seconds",
    "Time from storing an operation to the broker's confirm of its task message",
    buckets=(0.001, 0.002, 0.005, *(ms / 1000 for ms in range(10, 65, 5)), 0.075, 0.1,
             0.25, 1.0, 5.0, 30.0),
    registry=None)


def now_ms() -> int:
    """Epoch milliseconds, the outbox's clock."""
    return int(time.time() * 1000)


class Relay:
    """Publishes outbox entries through a dispatcher and removes each once confirmed."""

    def __init__(self, dispatcher: Dispatcher, outbox: TaskOutbox) -> None:
        self.dispatcher = dispatcher
        self.outbox = outbox

    def publish(self, entries: list[Entry]) -> None:
        """Publish these entries' messages, then remove the entries; raises (the entries
        left in the outbox) whatever the broker's client raises."""
        self.send(entries)
        self.outbox.remove(entries)

    def send(self, entries: list[Entry]) -> None:
        """Publish these entries' messages, confirmed, leaving the entries in the outbox;
        raises whatever the broker's client raises."""
        if not entries:
            return
        self.dispatcher.enqueue_many([entry.submission for entry in entries])
        confirmed = now_ms()
        for entry in entries:
            OUTBOX_WAIT_SECONDS.observe(max(0, confirmed - entry.stored_ms) / 1000)

    def pump(self, limit: int = 100) -> int:
        """Publish entries that are due (their publisher died or failed); how many."""
        entries = self.outbox.claim(now_ms(), limit)
        if not entries:
            return 0
        try:
            self.publish(entries)
        except Exception as exc:  # whatever the broker's client raises: tried again later
            log.warning("could not relay %d task message(s) (%s); will retry", len(entries),
                        type(exc).__name__)
            return 0
        log.warning("relayed %d task message(s) their API process did not publish",
                    len(entries))
        return len(entries)
