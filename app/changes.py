"""Waiting for changes without polling: one pub/sub listener per API process.

Every change of an operation is published on its project's changes channel as
`{name, project, event, state}` (sharded pub/sub on a cluster, on the project's shard). A
background thread per process subscribes to the projects that request threads wait on and
wakes those waiting on that operation's name or on its project (`projects/{p}`), so a
parked WaitOperation or `:watch` costs a thread and no Redis connection of its own.
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
from redis.exceptions import RedisClusterException

from core.connection import forget_primary
from core.keyspace import Keys

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how soon the listener takes up a project a waiter newly asks for
# On a cluster each shard's connection is polled in turn for this long: a change on one
# waits at most this times the number of shards subscribed to.
SHARD_POLL_SECONDS = 0.01
IDLE_SECONDS = 60.0  # a project no one waited on for this long is unsubscribed from
_SUBSCRIBED = ("subscribe", "ssubscribe")
_MESSAGES = ("message", "smessage")


class ChangeListener:
    """Lets request threads block until something they care about changes."""

    def __init__(self, client: redis.Redis, keys: Keys, *, sharded: bool = False) -> None:
        self._client = client
        self._keys = keys
        self._sharded = sharded  # SSUBSCRIBE (cluster) rather than SUBSCRIBE
        self._lock = threading.Lock()
        self._waiting: defaultdict[str, set[threading.Event]] = defaultdict(set)
        self._subscribed: dict[str, threading.Event] = {}  # project → set once subscribed
        self._wanted_at: dict[str, float] = {}  # project → when a waiter last wanted it
        self._thread: threading.Thread | None = None

    def wait(self, topics: Iterable[str], timeout: float, ready: Callable[[], bool]) -> bool:
        """Wait until `ready()`, rechecked on each change of `topics`, or `timeout` seconds.

        Topics are operation names and `projects/{p}` for any change in a project. Returns
        `ready()` as last seen.
        """
        topics = tuple(topics)
        deadline = time.monotonic() + timeout
        event = threading.Event()
        with self._lock:
            for topic in topics:
                self._waiting[topic].add(event)
        try:
            if ready():
                return True
            for subscribed in self._subscribe({topic.split("/")[1] for topic in topics}):
                # Only once subscribed is no change missed between a check and the next.
                if not subscribed.wait(max(0.0, deadline - time.monotonic())):
                    return ready()
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

    def _subscribe(self, projects: set[str]) -> list[threading.Event]:
        """Ask the listener for `projects`' channels; the events it sets once subscribed."""
        now = time.monotonic()
        with self._lock:
            # Started lazily so that each web worker process (after fork) has its own thread.
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._listen, name="opqueue-changes",
                                                daemon=True)
                self._thread.start()
            for project in projects:
                self._wanted_at[project] = now
            return [self._subscribed.setdefault(project, threading.Event())
                    for project in projects]

    def _listen(self) -> None:
        while True:
            pubsub = self._client.pubsub()
            try:
                self._serve(pubsub)
            except (redis.RedisError, RedisClusterException) as exc:
                log.warning("change listener lost Redis (%s); reconnecting", type(exc).__name__)
                with self._lock:
                    for subscribed in self._subscribed.values():
                        subscribed.clear()  # resubscribed (and rechecked) on reconnecting
                if self._sharded:  # a shard may have failed over: learn who serves what
                    forget_primary(self._client)
                time.sleep(0.5)  # back off before reconnecting
            finally:
                pubsub.close()

    def _serve(self, pubsub: Any) -> None:
        channels: set[str] = set()
        while True:
            self._follow_wishes(pubsub, channels)
            if not channels:
                time.sleep(POLL_SECONDS)
                continue
            message = (pubsub.get_sharded_message(timeout=SHARD_POLL_SECONDS)
                       if self._sharded else pubsub.get_message(timeout=POLL_SECONDS))
            if message is not None:
                self._dispatch(message)

    def _follow_wishes(self, pubsub: Any, channels: set[str]) -> None:
        """Subscribe to the projects waiters want and not yet subscribed to; unsubscribe
        from those idle too long."""
        now = time.monotonic()
        with self._lock:
            idle = [project for project, at in self._wanted_at.items()
                    if now - at > IDLE_SECONDS and not self._waits_on(project)]
            for project in idle:
                del self._wanted_at[project]
                self._subscribed.pop(project, None)
            wanted = {self._keys.changes(project) for project in self._wanted_at}
        gone, new = channels - wanted, wanted - channels
        if gone:
            (pubsub.sunsubscribe if self._sharded else pubsub.unsubscribe)(*gone)
        if new:
            (pubsub.ssubscribe if self._sharded else pubsub.subscribe)(*new)
        channels.clear()
        channels.update(wanted)

    def _waits_on(self, project: str) -> bool:
        topic = f"projects/{project}"
        return any(waiting == topic or waiting.startswith(f"{topic}/")
                   for waiting in self._waiting)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in _SUBSCRIBED:
            # Subscribed, or subscribed again after a reconnect: anything published while
            # not subscribed was missed, so every waiter of the project checks again.
            project = _project_of(str(message["channel"]))
            with self._lock:
                subscribed = self._subscribed.get(project)
            if subscribed is not None:
                subscribed.set()
            self._wake_project(project)
        elif kind in _MESSAGES:
            change = json.loads(message["data"])
            self._wake((change["name"], f"projects/{change.get('project', '')}"))

    def _wake_project(self, project: str) -> None:
        topic = f"projects/{project}"
        with self._lock:
            events = [event for waiting, group in self._waiting.items()
                      if waiting == topic or waiting.startswith(f"{topic}/") for event in group]
        for event in events:
            event.set()

    def _wake(self, topics: tuple[str, ...]) -> None:
        with self._lock:
            events = [event for topic in topics for event in self._waiting.get(topic, set())]
        for event in events:
            event.set()


def _project_of(channel: str) -> str:
    """The project of a changes channel (`PREFIX:{PROJECT}:changes`)."""
    return channel[channel.index("{") + 1:channel.index("}")]
