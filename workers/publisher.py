"""Publishing the task messages of many concurrent requests together: one broker round trip
for all of them (a group commit).

A request thread that has stored operations with their task-outbox entries hands the
entries to its process's `Publisher`. If no other thread is publishing, it becomes the
leader: it publishes everything handed over so far, its own entries included, as one batch
through the relay (on RabbitMQ: one socket write and one wait for all the confirms,
workers/confirms.py; on a Redis broker: one pipeline), wakes the others, and removes the
entries. Entries handed over meanwhile wait for that batch's confirms, and one of their
threads leads the next while the leader removes the confirmed entries. No extra thread:
the leader is a request thread already holding the GIL, so nothing waits for a publishing
thread to be scheduled.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from core.task_outbox import Entry
from workers.relay import Relay

log = logging.getLogger(__name__)

HANDOFF_TIMEOUT_SECONDS = 30.0  # longer than a publish retried once and a confirm timeout


@dataclass(eq=False)  # each handoff is itself: found in a list by identity
class _Handoff:
    """One request's entries, and how their publishing ended (`done`, `error`)."""

    entries: list[Entry]
    done: bool = False
    error: Exception | None = None


class Publisher:
    """Publishes outbox entries handed over by any thread, as few batches as can be."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._changed = threading.Condition()
        self._handed: list[_Handoff] = []
        self._publishing = False

    def publish(self, entries: list[Entry]) -> None:
        """Publish these entries' messages, with those other threads hand over meanwhile,
        and remove the entries; raises, the entries left in the outbox, what publishing
        raised (TimeoutError if it did not end in time)."""
        if not entries:
            return
        mine, deadline = _Handoff(entries), time.monotonic() + HANDOFF_TIMEOUT_SECONDS
        with self._changed:
            self._handed.append(mine)
            while not mine.done:
                if not self._publishing:
                    self._lead()
                elif not self._changed.wait(deadline - time.monotonic()):
                    if mine in self._handed:  # not taken by a leader yet: it never will be
                        self._handed.remove(mine)
                    raise TimeoutError("the task messages were not published in time")
        if mine.error is not None:
            raise mine.error

    def _lead(self) -> None:
        """Publish every handoff so far as one batch (called, and returning, holding the
        condition's lock). The next batch may start as soon as this one is confirmed: its
        entries are removed from the outbox after that."""
        batch, self._handed, self._publishing = self._handed, [], True
        entries = [entry for handoff in batch for entry in handoff.entries]
        error: Exception | None = RuntimeError("publishing the task messages was interrupted")
        self._changed.release()
        try:
            self.relay.send(entries)
            error = None
        except Exception as exc:  # every request of the batch answers it
            error = exc
        finally:
            with self._changed:
                for handoff in batch:
                    handoff.done, handoff.error = True, error
                self._publishing = False
                self._changed.notify_all()
            if error is None:
                self._remove(entries)
            self._changed.acquire()

    def _remove(self, entries: list[Entry]) -> None:
        try:
            self.relay.outbox.remove(entries)
        except Exception as exc:  # the messages are confirmed: a relay sends them again
            log.warning("could not remove %d published task message(s) from the outbox "
                        "(%s); a relay will publish them again", len(entries),
                        type(exc).__name__)
