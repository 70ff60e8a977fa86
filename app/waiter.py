"""WaitOperation without polling: one pub/sub subscription per API process.

Every state change is published on the changes channel. A background thread per process
listens and wakes the request threads waiting for the operation that just finished, so a
waiter costs a parked thread and no Redis connection.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis

from core.states import TERMINAL

log = logging.getLogger(__name__)

TERMINAL_NAMES = frozenset(state.value for state in TERMINAL)


class CompletionWaiter:
    """Lets request threads block until an operation is done, woken by pub/sub."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._client = client
        self._channel = channel
        self._lock = threading.Lock()
        self._waiting: defaultdict[str, set[threading.Event]] = defaultdict(set)
        self._thread: threading.Thread | None = None

    def wait(self, name: str, timeout: float, is_done: Callable[[], bool]) -> None:
        """Return once `is_done()` is true, or after `timeout` seconds; woken by pub/sub."""
        self._ensure_listening()
        deadline = time.monotonic() + timeout
        event = threading.Event()
        with self._lock:
            self._waiting[name].add(event)
        try:
            while True:
                # Cleared before checking, so a completion between the two is not missed;
                # a wake-up for any other reason just checks again.
                event.clear()
                remaining = deadline - time.monotonic()
                if is_done() or remaining <= 0:
                    return
                event.wait(remaining)
        finally:
            with self._lock:
                self._waiting[name].discard(event)
                if not self._waiting[name]:
                    del self._waiting[name]

    def _ensure_listening(self) -> None:
        # Started lazily so that each gunicorn worker (after fork) has its own thread.
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._listen, name="opqueue-waiter",
                                                daemon=True)
                self._thread.start()

    def _listen(self) -> None:
        while True:
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self._channel)
                # Anything published while we were not subscribed was missed: recheck all.
                self._wake_all()
                for message in pubsub.listen():
                    self._dispatch(message)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("change listener lost Redis (%s); reconnecting", type(exc).__name__)
                time.sleep(0.5)  # back off before reconnecting

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        change = json.loads(message["data"])
        if change.get("state") not in TERMINAL_NAMES:
            return
        with self._lock:
            events = list(self._waiting.get(change["name"], ()))
        for event in events:
            event.set()

    def _wake_all(self) -> None:
        with self._lock:
            events = [event for group in self._waiting.values() for event in group]
        for event in events:
            event.set()
