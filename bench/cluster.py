"""End-to-end throughput with the store on a Redis Cluster of three shards, beside the store
on one Redis, same run.

Two deployments are started next to the bench's: one whose store is one redis-server, one
whose store is a cluster of three primaries, each with a replica (tests/redis_deployments.py).
Both use the same redis-server binary for the store and, since Celery's Redis transport cannot
run on a cluster, the same broker kind: a Redis of its own. Each runs one worker node of two
processes; runs alternate between the two. Where no Redis 7 is installed (a cluster needs
sharded pub/sub), the benchmark says why and adds no row.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import requests

from bench import environment
from bench.report import Row, median_row
from bench.throughput import E2E_NODE, run_noops
from core.embedded_redis import EmbeddedRedis
from tests.redis_deployments import cluster_unavailable
from tests.stack import Stack, store_deployment

SIDES = ("standalone", "cluster")


@contextmanager
def deployment(stack: Stack, topology: str) -> Iterator[Stack]:
    """A deployment like `stack` (its settings) with its store on a `topology` of its own
    and a Redis of its own as its broker; its API and worker node started."""
    workdir = stack.workdir / f"{topology}-{uuid.uuid4().hex[:6]}"
    workdir.mkdir()
    with ExitStack() as running:
        if topology == "cluster":  # its broker: a Redis of its own, as below
            env, replicated = running.enter_context(store_deployment(workdir, "cluster"))
        else:
            store = running.enter_context(EmbeddedRedis(
                workdir / "store", persistent=False,
                executable=shutil.which("redis-server") or ""))
            broker = running.enter_context(EmbeddedRedis(workdir / "broker", persistent=False))
            env, replicated = {"REDIS_URL": store.url, "OPQUEUE_BROKER_URL": broker.url}, None
        other = Stack(env["REDIS_URL"], workdir, {**stack.extra_env, **env}, replicated)
        running.callback(other.close)
        other.start_web()
        for name, processes in E2E_NODE.items():
            other.start_worker(name, processes)
        yield other


def end_to_end(stack: Stack, quick: bool = False) -> list[Row]:
    """No-op jobs, submit → all done, store on a 3-shard cluster vs on one Redis."""
    reason = cluster_unavailable()
    if reason is not None:
        print(f"skipping the cluster benchmark: {reason}", file=sys.stderr)
        return []
    runs, count = (1, 200) if quick else (3, 2000)
    environment.use_workers(stack, {})  # the bench's own nodes would only compete for CPU
    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    with ExitStack() as running, requests.Session() as http:
        sides = {side: running.enter_context(deployment(stack, side)) for side in SIDES}
        for other in sides.values():  # warm both up outside the timing
            run_noops(other, http, f"bench-{uuid.uuid4().hex[:12]}", 50)
        for _ in range(runs):
            for side, other in sides.items():
                project = f"bench-{uuid.uuid4().hex[:12]}"
                rates[side].append(count / run_noops(other, http, project, count))
                environment.forget_project(other, project)
    return [median_row(
        "end to end, no-op jobs, store on a 3-shard Redis Cluster, 1 worker x 2 processes "
        "(jobs/s)", rates["cluster"], unit="/s", baseline=rates["standalone"],
        higher_is_better=True,
        note=f"{runs} runs of {count} jobs each side, alternating, submitted by :batchRun; "
             "cluster: 3 primaries with a replica each; baseline: the store on one "
             "redis-server (same binary); both with a Redis of their own as the broker, on "
             "the same 2-core machine (a cluster adds shards, not cores, here)")]
