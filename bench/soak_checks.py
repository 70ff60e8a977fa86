"""What the soak checks at the end, beyond lost and stuck operations: two terminal states,
runs that overlapped in time, and, for the few that went wrong, everything known about them.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any

import redis

from bench.soak_runs import runs_key
from core.connection import redis_client
from core.keyspace import Keys
from core.operation import Operation
from tests.stack import Stack

PROJECT = "soak"
Seen = dict[str, dict[str, Any] | None]  # name → the operation as the API showed it; None: 404


def overlapping_runs(client: redis.Redis, prefix: str, names: list[str],
                     killed_at: dict[int, float]) -> tuple[list[str], Counter[str]]:
    """Operations two of whose runs overlapped in time, and the runs by how they ended.

    An unfinished run ends when the chaos killed its process; one the chaos did not kill
    runs on forever as far as we know, so any later run of it counts as overlapping.
    """
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(runs_key(prefix, name))
        recorded: list[dict[str, str]] = pipe.execute()
    overlapping, kinds = [], Counter[str]()
    for name, runs in zip(names, recorded, strict=True):
        spans, reach = [], -math.inf
        for run, end in runs.items():
            pid, start = int(run.split(":")[0]), float(run.split(":")[1])
            kinds["finished" if end else "killed" if pid in killed_at else "lost"] += 1
            spans.append((start, float(end) if end else killed_at.get(pid, math.inf)))
        for start, stop in sorted(spans):
            if start < reach:
                overlapping.append(name)
                break
            reach = max(reach, stop)
    return overlapping, kinds


def double_terminal(terminal: Counter[str], seen: Seen,
                    final: dict[str, Operation | None]) -> list[str]:
    """Done operations with more than one terminal state: two published; a stored outcome
    that is not exactly the one its state needs; a change after the API showed it done."""
    found = []
    for name, shown in seen.items():
        if not shown or not shown["done"] or (now := final[name]) is None:
            continue
        succeeded = now.state == "SUCCEEDED"  # and only then a response, never an error
        wanted = (now.response is not None) == succeeded and (now.error is None) == succeeded
        before = (shown["metadata"]["state"], shown.get("response", {}).get("value"),
                  shown.get("error", {}).get("code"))
        after = (now.state.value, now.response, (now.status or {}).get("code"))
        if terminal[name] > 1 or not wanted or before != after:
            found.append(name)
    return found


def diagnose(stack: Stack, names: list[str]) -> None:
    """For a few bad operations: the stored hash, its runs, where its broker message is
    (queued, or unacknowledged since when), and every log line naming it."""
    client, broker = stack.store().redis, f"{stack.prefix}:broker:"
    messages = redis_client(stack.settings.effective_broker_url) \
        if stack.settings.redis_broker else None  # RabbitMQ's are not looked at
    unacked = messages.hgetall(f"{broker}unacked") if messages else {}
    queued = messages.lrange(broker + stack.prefix, 0, -1) if messages else []
    for name in names[:5]:
        operation_id = name.rsplit("/", 1)[-1]
        held = [(messages.zscore(f"{broker}unacked_index", tag) if messages else 0.0) or 0.0
                for tag, message in unacked.items() if operation_id in message]
        where = ", ".join([f"unacked since {datetime.fromtimestamp(t):%H:%M:%S.%f}" for t in held]
                          + ["queued"] * sum(operation_id in m for m in queued)) or "gone"
        print(f"\n{name}: {client.hgetall(Keys(stack.prefix).operation(PROJECT, operation_id))}\n"
              f"  runs: {client.hgetall(runs_key(stack.prefix, name))}; message: {where}")
        for log in sorted(stack.workdir.glob("*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if operation_id in line and ":wait HTTP" not in line:
                    print(f"  {log.stem}: {line}")
