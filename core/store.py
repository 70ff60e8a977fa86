"""The Redis operation store: the only source of truth about operations.

All Redis access for operations goes through `OperationStore`. Creation and every state
transition run as one Lua script each, so they are atomic across any number of API and
worker processes; every transition is announced on its project's changes channel. Every key
of a project shares the project's hash tag (core/keyspace.py), so on a Redis Cluster each
script runs on the project's shard.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from core import record
from core.config import Settings
from core.connection import UNREACHABLE, register_lua, store_client
from core.errors import ResourceExhausted
from core.keyspace import Keys
from core.layout import check_layout
from core.metrics import BUCKETS, bucket_labels
from core.names import operation_name
from core.operation import Operation
from core.projects import Projects
from core.replication import Replication, replicated_write
from core.states import LEASED, TERMINAL, TRANSITIONS, Event, State
from core.stored_ids import stored_id, wire_id
from core.timestamps import now_micros

# How many index entries a filtered listing examines per round trip.
SCAN_CHUNK = 200
_TERMINAL_FLAGS = {state.value: True for state in TERMINAL}
_LEASED_FLAGS = {state.value: True for state in LEASED}


@dataclass(frozen=True)
class Transition:
    """What applying an event did: the state found, the state left (None: unchanged), and
    the operation's attempt count afterwards (0 when unchanged)."""

    before: State | None
    after: State | None
    attempt: int = 0

    @property
    def applied(self) -> bool:
        """True when the event moved (or refreshed) the operation."""
        return self.after is not None


@dataclass(frozen=True)
class Push:
    """A message, opaque here, to store in the same atomic step that creates its operation:
    pushed onto a Redis list (a job's task message onto its queue, when the broker is this
    Redis), or, with a `score`, added to a sorted set (an entry of the task outbox, scored
    by when a relay may publish it: core/task_outbox.py)."""

    key: str
    payload: str
    score: int | None = None


@dataclass(frozen=True)
class NewOperation:
    """An operation to create: its id, labels, the client's requestId, webhook wishes and
    the message, if any, to push with it."""

    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""
    notify: tuple[str, tuple[str, ...]] | None = None  # (url, events)
    message: Push | None = None


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first; `cursor` is None at the end of the list."""

    operations: list[Operation]
    cursor: int | None


class OperationStore:
    """Reads and writes operations in Redis. The client must decode responses to str."""

    def __init__(self, client: redis.Redis, keys: Keys, retention_seconds: int,
                 max_queued_per_project: int = 0, event_stream_max_length: int = 10_000, *,
                 min_replicas: int = 0, replication_timeout: float = 1.0,
                 refuse_unreplicated: bool = True, outage_patience: float = 0.0,
                 sharded: bool = False) -> None:
        self.redis = client
        self.keys = keys
        self.projects = Projects(client, keys)
        # How the scripts announce a change: on a cluster, sharded pub/sub on the project's
        # own shard (Redis 7); elsewhere plain pub/sub, which every Redis has.
        self.publish = "SPUBLISH" if sharded else "PUBLISH"
        self.retention_seconds = retention_seconds
        self.max_queued_per_project = max_queued_per_project
        self.event_stream_max_length = event_stream_max_length
        self.min_replicas = min_replicas
        self.replication_timeout = replication_timeout
        self.refuse_unreplicated = refuse_unreplicated
        # Writes retried for about this many seconds while the store cannot be reached
        # (workers); None: a write fails at once (the API answers UNAVAILABLE).
        self._outage_retry = Retry(ExponentialBackoff(cap=1.0, base=0.05),
                                   retries=int(outage_patience) + 4,
                                   supported_errors=UNREACHABLE) if outage_patience else None
        self._create = register_lua(client, "core", "create.lua")
        self._transition = register_lua(client, "core", "transition.lua")
        self._renew = register_lua(client, "core", "renew.lua")
        self._delete = register_lua(client, "core", "delete.lua")
        self._reap = register_lua(client, "core", "reap.lua")

    def create(
        self,
        project: str,
        operation_id: str,
        job: str,
        *,
        labels: dict[str, str] | None = None,
        request_id: str = "",
        notify: tuple[str, tuple[str, ...]] | None = None,
    ) -> tuple[Operation, bool]:
        """Store a new PENDING operation; with a known `request_id`, return that one instead.

        Returns the operation and whether it was created by this call. Raises
        RESOURCE_EXHAUSTED if the project already has its most operations not done.
        """
        return self.create_many(project, job, [
            NewOperation(operation_id, labels or {}, request_id, notify)])[0]

    def create_many(self, project: str, job: str,
                    new: Sequence[NewOperation]) -> list[tuple[Operation, bool]]:
        """Store new PENDING operations of one job in one atomic step, in order.

        Each is as `create` would make it: an operation whose `request_id` is already known
        (or given earlier in `new`) comes back instead of a new one, with False. Each new one
        with a `message` has it pushed (or added) in the same step: stored and pushed, or
        neither. Raises
        RESOURCE_EXHAUSTED, storing nothing, if creating them all would take the project
        past its most operations not done.
        """
        self.projects.register(project)
        keys = [self.keys.index(project), self.keys.queued(project), self.keys.events(project),
                self.keys.metrics(project)]
        args: list[Any] = [now_micros(), self.retention_seconds, project,
                           self.max_queued_per_project, self.keys.changes(project),
                           self.event_stream_max_length, job, self.publish]
        for item in new:
            hash_key = self.keys.operation(project, item.id)
            keys += [hash_key, self.keys.request(project, item.request_id)
                     if item.request_id else hash_key,
                     item.message.key if item.message else hash_key]
            fields = record.new_fields(job, item.labels, item.request_id, item.notify)
            args += [item.id, stored_id(item.id), "1" if item.request_id else "0",
                     item.message.payload if item.message else "",
                     "" if item.message is None or item.message.score is None
                     else item.message.score, len(fields)]
            for pair in fields.items():
                args += pair
        reply = cast(list[Any], self._write(self._create, keys, args))
        if int(reply[0]) == 2:
            raise ResourceExhausted(
                f"project {project} already has {reply[1]} operations not done; its limit is "
                f"{self.max_queued_per_project}: wait for some to finish",
                reason="TOO_MANY_QUEUED_OPERATIONS",
                metadata={"limit": str(self.max_queued_per_project)})
        results: list[tuple[Operation, bool] | str] = []
        for item, flag, value in zip(new, reply[::2], reply[1::2], strict=True):
            if int(flag) == 0:
                results.append(str(value))  # an existing operation's id: loaded below
                continue
            stamp = int(value)
            results.append((Operation(
                project=project, id=item.id, job=job, state=State.PENDING, create_time=stamp,
                update_time=stamp, labels=dict(item.labels), request_id=item.request_id,
                notify_url=item.notify[0] if item.notify else ""), True))
        existing = {i: None for i in results if isinstance(i, str)}
        loaded = self._load(project, list(existing)) if existing else {}
        return [(self._existing(project, result, loaded), False) if isinstance(result, str)
                else result for result in results]

    def _existing(self, project: str, operation_id: str,
                  loaded: dict[str, Operation]) -> Operation:
        found = loaded.get(operation_id)
        if found is None:
            raise LookupError(f"{operation_name(project, operation_id)} vanished")
        return found

    def get(self, project: str, operation_id: str) -> Operation | None:
        """The operation, or None if it does not exist (never existed, deleted or expired)."""
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.operation(project, operation_id)))
        return record.decode(project, operation_id, raw) if raw else None

    def apply(
        self,
        project: str,
        operation_id: str,
        event: Event,
        fields: dict[str, Any] | None = None,
        *,
        increment: tuple[str, ...] = (),
        decrement: tuple[str, ...] = (),
        take_lease: float | None = None,
    ) -> Transition:
        """Apply `event` atomically if the operation's current state allows it.

        `increment` names counter fields to add one to, `decrement` those to take one from.
        `take_lease` (seconds) takes the operation's lease, which a started operation grants
        only once its holder's lease has expired; a zero-length lease thus applies an event
        only to an abandoned one. Should the client retry the call after losing its reply,
        the retry gets the same answer and applies nothing twice.
        """
        now = now_micros()
        args = {
            "token": os.urandom(8).hex(),
            "event": event.value,
            "bounds": list(BUCKETS),
            "labels": bucket_labels()[:-1],
            "moves": {src.value: dst.value for src, dst in TRANSITIONS[event].items()},
            "terminal": _TERMINAL_FLAGS,
            "leased": _LEASED_FLAGS,
            "now": str(now),
            "retention": self.retention_seconds,
            "member": f"{project}/{operation_id}",
            "project": project,
            "id": operation_id,
            "stream_max": self.event_stream_max_length,
            "channel": self.keys.changes(project),
            "publish": self.publish,
            "name": operation_name(project, operation_id),
            "incr": list(increment),
            "decr": list(decrement),
            "fields": {name: str(value) for name, value in (fields or {}).items()},
            "implied": record.IMPLIED,
        }
        if take_lease is not None:
            args["lease_until"] = str(now + int(take_lease * 1_000_000))
        before, after, attempt = self._write(
            self._transition,
            [self.keys.operation(project, operation_id), self.keys.leases(project),
             self.keys.queued(project), self.keys.events(project),
             self.keys.outbox(project), self.keys.metrics(project)],
            [json.dumps(args)],
        )
        return Transition(State(before) if before else None, State(after) if after else None,
                          int(attempt))

    def delete(self, project: str, operation_id: str) -> bool:
        """Forget an operation and every entry about it; True if it existed."""
        member = f"{project}/{operation_id}"
        existed = self._write(
            self._delete,
            [self.keys.operation(project, operation_id), self.keys.index(project),
             self.keys.leases(project), self.keys.queued(project),
             self.keys.events(project), self.keys.metrics(project)],
            [project, stored_id(operation_id), member, self.keys.request(project, ""),
             operation_id, self.keys.changes(project),
             self.event_stream_max_length, now_micros(), self.retention_seconds, self.publish,
             *_TERMINAL_FLAGS])
        return bool(existed)

    def _write(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a writing script and return its reply, retried through an outage for the
        store's patience (the scripts answer a repeated call as the first)."""
        if self._outage_retry is None:
            return self._write_once(script, keys, args)
        return self._outage_retry.call_with_retry(
            lambda: self._write_once(script, keys, args), lambda error: None)

    def _write_once(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a writing script once; with `min_replicas`, answered once replicated."""
        if not self.min_replicas:
            return script(keys=keys, args=args)
        return replicated_write(self.redis, script, keys, args, Replication(
            self.min_replicas, self.replication_timeout, self.refuse_unreplicated))

    def list_page(
        self,
        project: str,
        page_size: int,
        *,
        before: int | None = None,
        since: int | None = None,
        matches: Callable[[Operation], bool] | None = None,
        scan_limit: int = 5000,
    ) -> Page:
        """Up to `page_size` operations created in [since, before), newest first.

        With `matches`, operations are examined in index order and at most `scan_limit` of
        them per call, so a page costs the same however many operations a project holds; a
        page may then come back short, with a cursor to go on from.
        """
        index = self.keys.index(project)
        lower = "-inf" if since is None else str(since)
        chunk = page_size if matches is None else max(page_size, SCAN_CHUNK)
        found: list[Operation] = []
        examined, last = 0, before
        while len(found) < page_size and examined < scan_limit:
            upper = "+inf" if last is None else f"({last}"
            ids = [(wire_id(stored), score) for stored, score in cast(
                list[tuple[str, float]], self.redis.zrevrangebyscore(
                    index, upper, lower, start=0, num=min(chunk, scan_limit - examined),
                    withscores=True))]
            if not ids:
                return Page(found, None)
            loaded = self._load(project, [operation_id for operation_id, _ in ids])
            for operation_id, score in ids:
                examined, last = examined + 1, int(score)
                operation = loaded.get(operation_id)
                if operation is not None and (matches is None or matches(operation)):
                    found.append(operation)
                    if len(found) == page_size:
                        break
        more = self.redis.zrevrangebyscore(index, f"({last}", lower, start=0, num=1)
        return Page(found, last if more else None)

    def _load(self, project: str, operation_ids: list[str]) -> dict[str, Operation]:
        """Operations by id; ids whose hash has expired are dropped from the index."""
        with self.redis.pipeline(transaction=False) as pipe:
            for operation_id in operation_ids:
                pipe.hgetall(self.keys.operation(project, operation_id))
            hashes = cast(list[dict[str, str]], pipe.execute())
        vanished = [i for i, raw in zip(operation_ids, hashes, strict=True) if not raw]
        if vanished:  # expired since the last reap
            self.redis.zrem(self.keys.index(project), *map(stored_id, vanished))
        return {i: record.decode(project, i, raw)
                for i, raw in zip(operation_ids, hashes, strict=True) if raw}

    def reap_expired(self, limit: int = 100) -> int:
        """Drop from each project's index up to `limit` operations whose hash has expired,
        examining at most `limit` of its entries old enough to have (one script for each
        project that has such entries; the others cost one pipelined read together)."""
        horizon = now_micros() - self.retention_seconds * 1_000_000
        return sum(int(self._reap(
            keys=[self.keys.index(project), self.keys.reaped(project)],
            args=[horizon, limit, self.keys.operation(project, "")]))
            for project in self.projects.due(self.keys.index, horizon))

    def shared_secret(self) -> bytes:
        """A random 32-byte key shared by every process of this deployment, made on first use."""
        key = self.keys.secret()
        fresh = base64.urlsafe_b64encode(os.urandom(32)).decode()
        self.redis.set(key, fresh, nx=True)
        return str(self.redis.get(key)).encode()

    def renew_leases(self, refs: list[tuple[str, str]], lease_seconds: float) -> int:
        """Extend the leases of running operations (others are skipped); how many were."""
        until = now_micros() + int(lease_seconds * 1_000_000)
        by_project: dict[str, list[str]] = {}
        for project, operation_id in refs:
            by_project.setdefault(project, []).append(operation_id)
        renewed = 0
        for project, ids in by_project.items():  # one script per project: one shard each
            renewed += int(self._renew(
                keys=[self.keys.leases(project), *(self.keys.operation(project, i) for i in ids)],
                args=[until, *(f"{project}/{i}" for i in ids)]))
        return renewed

    def drop_lease(self, project: str, operation_id: str) -> None:
        """Forget a lease entry whose operation is no longer running (or no longer exists)."""
        self.redis.zrem(self.keys.leases(project), f"{project}/{operation_id}")

    def expired_leases(self, limit: int = 20) -> list[tuple[str, str]]:
        """(project, id) of running operations whose worker stopped renewing its lease."""
        now = now_micros()
        found: list[tuple[str, str]] = []
        for project in self.projects.due(self.keys.leases, now):
            members = cast(list[str], self.redis.zrangebyscore(
                self.keys.leases(project), "-inf", now, start=0, num=limit - len(found)))
            found += [cast(tuple[str, str], tuple(member.split("/", 1))) for member in members]
            if len(found) >= limit:
                break
        return found

    def stream_tip(self, project: str) -> str:
        """The id of the newest entry in a project's change stream ("0-0" if empty)."""
        newest = cast(list[tuple[str, dict[str, str]]],
                      self.redis.xrevrange(self.keys.events(project), count=1))
        return newest[0][0] if newest else "0-0"

    def changes_after(self, project: str, after: str,
                      count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """Up to `count` entries of a project's change stream newer than entry `after`, each
        with the `name` of its operation, its `event` and the `state` it left."""
        entries = cast(list[tuple[str, dict[str, str]]],
                       self.redis.xrange(self.keys.events(project), f"({after}", "+", count=count))
        # Stored with the operation id alone: the project is the stream's own.
        return [(entry, {"name": operation_name(project, change["id"]),
                         "event": change["event"], "state": change["state"]})
                for entry, change in entries]

    def cancellations(self, refs: list[tuple[str, str]]) -> list[tuple[State | None, int | None]]:
        """For (project, id) pairs: each one's state and when its cancellation was asked for."""
        with self.redis.pipeline(transaction=False) as pipe:
            for project, operation_id in refs:
                pipe.hmget(self.keys.operation(project, operation_id),
                           [record.STATE, record.REQUESTED_CANCELLATION])
            rows = cast(list[list[str | None]], pipe.execute())
        return [(State(state) if state else None, int(asked) if asked else None)
                for state, asked in rows]

    def state(self, project: str, operation_id: str) -> State | None:
        """Just the operation's state (None if it does not exist): the cheap cancellation check."""
        value = cast(str | None, self.redis.hget(self.keys.operation(project, operation_id),
                                                 record.STATE))
        return State(value) if value else None


def operation_store(settings: Settings, client: redis.Redis | None = None, *,
                    patient: bool = False) -> OperationStore:
    """The operation store of this deployment, on `client` or on a client of its store.

    `patient` is for workers: their writes wait out an outage of `store_outage_seconds`
    (the API's answer UNAVAILABLE at once), and one that its replicas did not confirm in time
    is logged rather than refused, since the leases recover what a failover loses. So does
    connecting: a cluster client reaches the cluster through the one node `REDIS_URL`
    names, which may be the primary a failover just lost.
    """
    if not patient:
        return _connected_store(settings, client, patient=False)
    deadline = time.monotonic() + settings.store_outage_seconds
    while True:
        try:
            return _connected_store(settings, client, patient=True)
        except _CONNECTING:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # the node is back, or another one answers, within seconds


_CONNECTING: tuple[type[Exception], ...] = (*UNREACHABLE, RedisClusterException)


def _connected_store(settings: Settings, client: redis.Redis | None, *,
                     patient: bool) -> OperationStore:
    store = OperationStore(
        client if client is not None else store_client(settings),
        Keys(settings.key_prefix),
        settings.retention_seconds,
        settings.max_queued_per_project,
        settings.event_stream_max_length,
        min_replicas=settings.store_min_replicas,
        replication_timeout=settings.store_replication_timeout_seconds,
        refuse_unreplicated=not patient,
        outage_patience=settings.store_outage_seconds if patient else 0.0,
        sharded=settings.redis_mode == "cluster",
    )
    check_layout(store.redis, store.keys)
    return store
