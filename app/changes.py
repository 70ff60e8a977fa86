"""Waiting for changes without polling: one pub/sub subscription per API process.

Every change of an operation is published on the changes channel as
`{name, project, event, state}`. A background thread per process listens and wakes the
request threads waiting on that operation's name or on its project (`projects/{p}`), so
a parked WaitOperation or `:watch` costs a thread and no Redis connection.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import redis

log = logging.getLogger(__name__)


class ChangeListener:
    """Lets request threads block until something they care about changes."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._client = client
        self._channel = channel
        self._lock = threading.Lock()
        self._waiting: defaultdict[str, set[threading.Event]] = defaultdict(set)
        self._thread: threading.Thread | None = None

    def wait(self, topics: Iterable[str], timeout: float, ready: Callable[[], bool]) -> bool:
        """Wait until `ready()`, rechecked on each change of `topics`, or `timeout` seconds.

        Topics are operation names and `projects/{p}` for any change in a project. Returns
        `ready()` as last seen.
        """
        self._ensure_listening()
        topics = tuple(topics)
        deadline = time.monotonic() + timeout
        event = threading.Event()
        with self._lock:
            for topic in topics:
                self._waiting[topic].add(event)
        try:
            while True:
                # Cleared before checking, so a change between the two is not missed; a
                # wake-up for any other reason just checks again.
                event.clear()
                if ready():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                event.wait(remaining)
        finally:
            with self._lock:
                for topic in topics:
                    self._waiting[topic].discard(event)
                    if not self._waiting[topic]:
                        del self._waiting[topic]

    def _ensure_listening(self) -> None:
        # Started lazily so that each gunicorn worker (after fork) has its own thread.
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._listen, name="opqueue-changes",
                                                daemon=True)
                self._thread.start()

    def _listen(self) -> None:
        while True:
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self._channel)
                # Anything published while we were not subscribed was missed: recheck all.
                self._wake(None)
                for message in pubsub.listen():
                    self._dispatch(message)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("change listener lost Redis (%s); reconnecting", type(exc).__name__)
                time.sleep(0.5)  # back off before reconnecting

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        change = json.loads(message["data"])
        self._wake((change["name"], f"projects/{change.get('project', '')}"))

    def _wake(self, topics: tuple[str, ...] | None) -> None:
        with self._lock:
            groups = (self._waiting.values() if topics is None
                      else [self._waiting.get(topic, set()) for topic in topics])
            events = [event for group in groups for event in group]
        for event in events:
            event.set()
