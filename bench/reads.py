"""GetOperation under load, beside /healthz on the same server (the cost of a request that
does nothing), both from 32 concurrent keep-alive clients."""

from __future__ import annotations

import uuid

from bench import environment
from bench.load import Load, hammer
from bench.report import Row, median_row
from core import record
from core.names import new_operation_id
from core.states import Event
from core.timestamps import now_micros
from tests.stack import Stack

CLIENTS = 32


def get_operation(stack: Stack, quick: bool = False) -> list[Row]:
    """Requests a second and p99 latency of GetOperation on a done operation vs /healthz."""
    runs, seconds = (2, 1.0) if quick else (5, 3.0)
    environment.use_workers(stack, {})
    project = f"bench-{uuid.uuid4().hex[:12]}"
    name = done_operation(stack, project)
    gets: list[Load] = []
    healths: list[Load] = []
    for _ in range(runs):
        healths.append(hammer(f"{stack.base_url}/healthz", connections=CLIENTS,
                              seconds=seconds))
        gets.append(hammer(f"{stack.base_url}/v1/{name}", connections=CLIENTS,
                           seconds=seconds))
    environment.forget_project(stack, project)
    errors = sum(load.errors for load in gets + healths)
    return [
        median_row("GetOperation, 32 keep-alive clients (requests/s)",
                   [load.rate for load in gets], unit="/s",
                   baseline=[load.rate for load in healths], target_ratio=0.8,
                   higher_is_better=True,
                   note=f"{runs} runs of {seconds:g} s each, alternating with the baseline, "
                        f"`/healthz` on the same server; a SUCCEEDED operation with a small "
                        f"response; load from {gets[0].generator} ({errors} errors)"),
        median_row("GetOperation p99 latency, 32 clients", [load.p99 for load in gets],
                   baseline=[load.p99 for load in healths]),
    ]


def done_operation(stack: Stack, project: str) -> str:
    """A SUCCEEDED operation, written through the same store calls a worker makes."""
    store = stack.store()
    operation, _ = store.create(project, new_operation_id(), "bench.noop")
    store.apply(project, operation.id, Event.START,
                {record.START_TIME: now_micros(), record.WORKER: "bench@host"},
                increment=(record.ATTEMPT,), take_lease=10)
    store.apply(project, operation.id, Event.SUCCEED,
                {record.RESPONSE: record.encode_json({"ok": True}), record.PROGRESS_PERCENT: 100})
    store.redis.close()
    return operation.name
