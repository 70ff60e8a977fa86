"""Operation metrics, counted in Redis by the same scripts that make each change.

So they are exact across any number of API and worker processes on any hosts. One hash per
project (on the project's shard, beside its operations) holds its counters, summed across
projects where they are read; its fields are `kind|job|label`:

- `created|JOB|`            operations created
- `moved|JOB|FROM>TO`       changes of state from FROM to TO
- `deleted|JOB|STATE`       operations deleted while in STATE, not done

each change counted by one command; `read` derives how many ended in each state (moves
into it) and how many are now PENDING, RUNNING or CANCELLING (created, moved in, less
moved out and deleted).
- `run|JOB|LE`, `wait|JOB|LE`  histogram buckets (seconds) of run time (start to end of
                            the last attempt) and queue wait (create to start), each
                            counting the observations of its own bucket only (one command
                            per observation; `read` adds them up), with `LE` = `sum` for
                            their sums
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import cast

import redis

from core.keyspace import Keys
from core.projects import Projects
from core.states import LEASED, TERMINAL, State

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
           900.0, 3600.0)
ACTIVE = frozenset({State.PENDING, *LEASED})


@dataclass
class Histogram:
    """Cumulative bucket counts (by upper bound, `+Inf` last), sum and count."""

    buckets: dict[str, float] = field(default_factory=dict)
    sum: float = 0.0
    count: float = 0.0


@dataclass
class OperationMetrics:
    """A snapshot of the counters, by job (and state)."""

    created: dict[str, float] = field(default_factory=dict)
    finished: dict[tuple[str, str], float] = field(default_factory=dict)
    active: dict[tuple[str, str], float] = field(default_factory=dict)
    run: dict[str, Histogram] = field(default_factory=lambda: defaultdict(Histogram))
    wait: dict[str, Histogram] = field(default_factory=lambda: defaultdict(Histogram))


def read(client: redis.Redis, keys: Keys) -> OperationMetrics:
    """The current counters, of all projects together."""
    projects = Projects(client, keys).all()
    raw: defaultdict[str, float] = defaultdict(float)
    with client.pipeline(transaction=False) as pipe:
        for project in projects:
            pipe.hgetall(keys.metrics(project))
        for counters in cast(list[dict[str, str]], pipe.execute() if projects else []):
            for name, value in counters.items():
                raw[name] += float(value)
    metrics = OperationMetrics()
    for name, number in raw.items():
        kind, job, label = name.split("|", 2)
        if kind == "created":
            metrics.created[job] = number
            _add(metrics.active, (job, State.PENDING.value), number)
        elif kind == "moved":
            before, after = label.split(">")
            if State(after) in TERMINAL:
                _add(metrics.finished, (job, after), number)
            _add(metrics.active, (job, after), number)
            _add(metrics.active, (job, before), -number)
        elif kind == "deleted":
            _add(metrics.active, (job, label), -number)
        elif kind in ("run", "wait"):
            histogram = (metrics.run if kind == "run" else metrics.wait)[job]
            if label == "sum":
                histogram.sum = number
            else:
                histogram.buckets[label] = number
    for histogram in (*metrics.run.values(), *metrics.wait.values()):
        _cumulate(histogram)
    metrics.active = {key: number for key, number in metrics.active.items()
                      if State(key[1]) in ACTIVE}
    return metrics


def _add(counts: dict[tuple[str, str], float], key: tuple[str, str], number: float) -> None:
    counts[key] = counts.get(key, 0.0) + number


def _cumulate(histogram: Histogram) -> None:
    """Turn the per-bucket counts the scripts keep into cumulative buckets and a count."""
    total = 0.0
    for label in bucket_labels():
        total += histogram.buckets.get(label, 0.0)
        histogram.buckets[label] = total
    histogram.count = total


def bucket_labels() -> list[str]:
    """The `le` labels of the histograms, as the scripts write them."""
    return [*(f"{bound:g}" for bound in BUCKETS), "+Inf"]
