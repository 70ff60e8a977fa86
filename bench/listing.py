"""ListOperations, a page of 100, on a project of 1,000,000 operations against one of 1,000.

Creating a million operations through the API would take minutes, so they are written
straight into the stack's Redis by a bulk loader that writes what create.lua writes for a
plain submission (the hash with the same fields, the index entry with a unique score, the
not-done count) and leaves out the per-operation change-stream entry and announcement,
which listing never reads. The loaded hashes are checked against one the store creates.
Pages are read at the head and at a deep cursor (90% of the way down), whose page token is
issued with the deployment's own key, exactly as the API would after paging that far.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import requests

from app.page_tokens import PageTokens
from bench import environment
from bench.report import Row, median_row
from core.connection import redis_client
from core.names import new_operation_id
from core.stored_ids import stored_id, wire_id
from core.timestamps import now_micros
from tests.stack import Stack

PAGE = 100
CHUNK = 5000  # operations per loader call
JOB = "bench.noop"
# KEYS[1] project index   KEYS[2] not-done counts   ARGV[1] key prefix of the project's
# operation hashes   ARGV[2] first create time (µs)   ARGV[3] project   ARGV[4] job
# ARGV[5..] operation ids, oldest first
LOADER = """
local stamp = tonumber(ARGV[2])
for i = 5, #ARGV do
  local at = string.format('%.0f', stamp + i - 5)
  redis.call('HSET', ARGV[1] .. ARGV[i], 'ct', at, 'ut', at, 'job', ARGV[4], 'state', 'PENDING')
  redis.call('ZADD', KEYS[1], at, ARGV[i])
end
redis.call('HINCRBY', KEYS[2], ARGV[3], #ARGV - 4)
return #ARGV - 4
"""


def populate(stack: Stack, project: str, count: int) -> None:
    """Write `count` PENDING operations into `project`, oldest a second per 1e6 ago."""
    client = redis_client(stack.redis_url)
    keys = stack.store().keys
    loader = client.register_script(LOADER)
    first = now_micros() - count - 1_000_000
    try:
        for offset in range(0, count, CHUNK):
            ids = [stored_id(new_operation_id()) for _ in range(min(CHUNK, count - offset))]
            loader(keys=[keys.index(project), keys.queued(project)],
                   args=[keys.operation(project, ""), first + offset, project, JOB, *ids])
    finally:
        client.close()


def check_like_the_store(stack: Stack) -> None:
    """Raise unless the loader writes the fields the store's create writes."""
    project = f"bench-{uuid.uuid4().hex[:12]}"
    populate(stack, project, 1)
    store = stack.store()
    try:
        made, _ = store.create(project, new_operation_id(), JOB)
        loaded = store.redis.zrange(store.keys.index(project), 0, 0)[0]
        fields = {name: set(store.redis.hgetall(store.keys.operation(project, i)))
                  for name, i in (("store", made.id), ("loader", wire_id(loaded)))}
        if fields["store"] != fields["loader"]:
            raise RuntimeError(f"the bulk loader writes other fields than the store: {fields}")
    finally:
        store.redis.close()
        environment.forget_project(stack, project)


def _page_latency(http: requests.Session, url: str, params: dict[str, Any],
                  requests_per_run: int) -> float:
    """The median latency of `requests_per_run` sequential calls."""
    latencies = []
    for _ in range(requests_per_run):
        start = time.perf_counter()
        answer = http.get(url, params=params, timeout=30)
        latencies.append(time.perf_counter() - start)
        if answer.status_code != 200 or len(answer.json()["operations"]) != PAGE:
            raise RuntimeError(f"GET {url}: HTTP {answer.status_code} {answer.text[:300]}")
    return statistics.median(latencies)


def _deep_token(stack: Stack, project: str, depth: int) -> str:
    store = stack.store()
    try:
        [(_, score)] = store.redis.zrevrange(store.keys.index(project), depth, depth,
                                             withscores=True)
        return PageTokens(store.shared_secret).issue(project, "", int(score))
    finally:
        store.redis.close()


def list_operations(stack: Stack, quick: bool = False) -> list[Row]:
    """Head and deep pages of 100 on a big project vs a project of 1,000."""
    big, small = (20_000, 1_000) if quick else (1_000_000, 1_000)
    runs, calls = (2, 10) if quick else (5, 40)
    environment.use_workers(stack, {})
    projects = {size: f"bench-{uuid.uuid4().hex[:12]}" for size in (big, small)}
    check_like_the_store(stack)
    started = time.perf_counter()
    for size, project in projects.items():
        populate(stack, project, size)
    loaded_in = time.perf_counter() - started
    results: dict[tuple[int, str], list[float]] = {}
    try:
        with requests.Session() as http:
            for size, project in projects.items():
                url = f"{stack.base_url}/v1/projects/{project}/operations"
                token = _deep_token(stack, project, min(int(size * 0.9), size - 2 * PAGE))
                for where, params in (("head", {"pageSize": PAGE}),
                                      ("deep", {"pageSize": PAGE, "pageToken": token})):
                    _page_latency(http, url, params, 3)  # warm up
                    results[(size, where)] = []
            for _ in range(runs):  # alternate sizes run by run
                for size, project in projects.items():
                    url = f"{stack.base_url}/v1/projects/{project}/operations"
                    token = _deep_token(stack, project, min(int(size * 0.9), size - 2 * PAGE))
                    for where, params in (("head", {"pageSize": PAGE}),
                                          ("deep", {"pageSize": PAGE, "pageToken": token})):
                        results[(size, where)].append(_page_latency(http, url, params, calls))
    finally:
        for project in projects.values():
            environment.forget_project(stack, project)
    note = (f"{runs} runs of {calls} sequential calls (median of each run) per page, one "
            f"keep-alive client; {big:,} operations bulk-loaded in {loaded_in:.0f} s; deep = "
            f"a page token at 90% of the list; baseline: the same page of a {small:,}-"
            "operation project")
    return [median_row(f"ListOperations page of {PAGE}, {big:,} operations, {where}",
                       results[(big, where)], baseline=results[(small, where)],
                       target_ratio=1.5, note=note if where == "head" else "")
            for where in ("head", "deep")]
