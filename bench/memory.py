"""Redis memory per done operation against Celery's result backend per task result.

Both sides run N no-op jobs to completion and the figure is the growth of Redis's
`used_memory` divided by N, measured once the queues are empty: everything a finished job
leaves behind, whatever the key (for us: the hash and its TTL entry, its entry in the
project index, and its share of the bounded change stream; for Celery: the
`celery-task-meta-*` string and its TTL entry).
"""

from __future__ import annotations

import uuid
from typing import Any

import redis
import requests

from bench import environment
from bench.report import Row, median_row
from bench.throughput import E2E_NODE, run_baseline, run_noops, yardstick
from core.connection import redis_client
from tests.stack import Stack, eventually

SAMPLE = 200  # hashes whose MEMORY USAGE is averaged for the note


def _used(client: redis.Redis) -> int:
    client.execute_command("MEMORY", "PURGE")  # return freed pages, so deltas are steadier
    return int(client.info("memory")["used_memory"])


def _settled(client: redis.Redis, *queues: str) -> None:
    eventually(lambda: not any(client.llen(queue) for queue in queues), timeout=60,
               what="the queues to drain")


def memory_per_operation(stack: Stack, quick: bool = False) -> list[Row]:
    """Bytes of Redis per done no-op operation vs per Celery task result."""
    count = 500 if quick else 10_000
    runs = 1 if quick else 2
    environment.use_workers(stack, E2E_NODE)
    client = redis_client(stack.redis_url)
    keys = stack.store().keys
    queue = f"{keys.broker_prefix()}{stack.settings.queue}"
    ours: list[float] = []
    theirs: list[float] = []
    breakdown: dict[str, Any] = {}
    try:
        with yardstick(stack, results=True, worker=2) as (app, prefix), \
                requests.Session() as http:
            run_noops(stack, http, f"bench-{uuid.uuid4().hex[:12]}", 50)  # warm up
            run_baseline(app, prefix, 50)
            for _ in range(runs):
                project = f"bench-{uuid.uuid4().hex[:12]}"
                _settled(client, queue)
                before = _used(client)
                run_noops(stack, http, project, count)
                _settled(client, queue)
                ours.append((_used(client) - before) / count)
                breakdown = _breakdown(client, stack, project, count)
                environment.forget_project(stack, project)
                baseline_queue = f"{prefix}:{prefix}"
                _settled(client, baseline_queue)
                before = _used(client)
                run_baseline(app, prefix, count)
                _settled(client, baseline_queue)
                theirs.append((_used(client) - before) / count)
    finally:
        client.close()
    return [median_row(
        "Redis memory per done operation (bytes)", ours, unit="B", baseline=theirs,
        target_ratio=1.0,
        note=f"`used_memory` growth over {count:,} no-op jobs run to the end, {runs} run(s) "
             f"each side; MEMORY USAGE of one operation's hash ≈ {breakdown.get('hash', 0):.0f}"
             f" B, its share of the project index ≈ {breakdown.get('index', 0):.0f} B and of "
             f"the change stream ≈ {breakdown.get('stream', 0):.0f} B; a Celery result key ≈ "
             f"{breakdown.get('celery', 0):.0f} B")]


def _breakdown(client: redis.Redis, stack: Stack, project: str, count: int) -> dict[str, Any]:
    keys = stack.store().keys
    ids = client.zrange(keys.index(project), 0, SAMPLE - 1)
    hashes = [client.memory_usage(keys.operation(project, i)) or 0 for i in ids]
    index = client.memory_usage(keys.index(project), samples=0) or 0
    stream = client.memory_usage(keys.events(project), samples=0) or 0
    celery = [client.memory_usage(key) or 0
              for key in client.scan_iter(match=f"{stack.prefix}:baseline-*:celery-task-meta-*",
                                          count=1000)][:SAMPLE]
    return {"hash": sum(hashes) / max(1, len(hashes)), "index": index / count,
            "stream": stream / count, "celery": sum(celery) / max(1, len(celery))}
