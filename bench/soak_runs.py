"""What the soak's workers record about each run of a job (a job module of the soak stack).

Runs are seen without touching the jobs: Celery's task_prerun/task_postrun handlers record
each run's pid and span in the store, one hash per operation, `pid:start` → end (empty: the
run never finished). A record is retried through a store failover (a primary SIGKILLed and
its replica promoted), so that a run's end is not lost to it.
"""

from __future__ import annotations

import os
import time
from functools import cache
from typing import Any

import redis
from celery import signals
from redis.exceptions import RedisClusterException

from core.config import Settings
from core.connection import store_client

FAILOVER_SECONDS = 60.0  # how long a record is retried while the store cannot be reached
_open_runs: dict[str, str] = {}  # in a pool process: task id → `pid:start` of its run


@cache
def _store(pid: int) -> redis.Redis:  # keyed by pid: a client of its own after the fork
    return store_client(Settings.from_env())


def runs_key(prefix: str, name: str) -> str:
    """Hash of an operation's runs, under its project's hash tag (core/keyspace.py): on its
    project's shard, as its other keys."""
    project, operation_id = name.split("/")[1], name.rsplit("/", 1)[-1]
    return f"{prefix}:{{{project}}}:soak-runs:{operation_id}"


def _record(task_id: str, kwargs: dict[str, Any], change: str, run: str, end: str = "") -> None:
    settings = Settings.from_env()
    key = runs_key(settings.key_prefix, f"projects/{kwargs.get('project', '')}/operations/"
                   f"{task_id}")
    deadline = time.monotonic() + FAILOVER_SECONDS
    while True:
        try:
            client = _store(os.getpid())
            if change == "forget":
                client.hdel(key, run)
            else:
                client.hset(key, run, end)
            return
        except (redis.RedisError, RedisClusterException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _run_starts(task_id: str, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    _open_runs[task_id] = run = f"{os.getpid()}:{time.time():.6f}"
    _record(task_id, kwargs or {}, "start", run)


def _run_ends(task_id: str, state: str, kwargs: dict[str, Any] | None = None,
              **_: Any) -> None:
    run = _open_runs.pop(task_id, "")
    if run and state == "IGNORED":  # a skipped delivery: the job did not run
        _record(task_id, kwargs or {}, "forget", run)
    elif run:
        _record(task_id, kwargs or {}, "end", run, f"{time.time():.6f}")


signals.task_prerun.connect(_run_starts)  # in every process that imports this module; they
signals.task_postrun.connect(_run_ends)  # fire only where tasks run, in the pool processes
