"""Jobs the benchmarks run (the bench stack loads this module besides the demo jobs)."""

from __future__ import annotations

import time
from typing import Any

from marshmallow import Schema, fields, validate

from core.jobs import JobContext, job


class Nothing(Schema):
    pass


@job("bench.noop", input_schema=Nothing, timeout=60)
def noop(context: JobContext) -> None:
    """Does nothing: what end-to-end throughput is measured with."""


class SpinInput(Schema):
    seconds = fields.Float(required=True, validate=validate.Range(min=0, max=60))


@job("bench.progress", input_schema=SpinInput, timeout=120)
def spin(context: JobContext, seconds: float) -> dict[str, Any]:
    """Reports progress in a tight loop for `seconds`; returns how many calls it made."""
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            calls += 1
            context.progress(50, "spinning", calls=calls, at=time.time())
    return {"calls": calls, "seconds": time.perf_counter() - start}


@job("bench.step", input_schema=Nothing, timeout=60)
def step(context: JobContext) -> dict[str, Any]:
    """Reports progress once, then returns: one job step of each kind, what
    bench/commands.py counts the Redis commands of."""
    context.progress(50, "halfway", step=1)
    return {"steps": 1}
