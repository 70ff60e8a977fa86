"""Jobs for integration tests: they block on Redis lists ("gates") the test opens, so tests
synchronise on real signals instead of sleeping, and count their runs in Redis."""

from __future__ import annotations

import os
import signal
from functools import cache
from typing import Any

import redis
from billiard.exceptions import SoftTimeLimitExceeded
from marshmallow import Schema, fields

from core.config import Settings
from core.connection import store_client
from core.jobs import JobContext, job


@cache
def _redis() -> redis.Redis:
    return store_client(Settings.from_env())


def _key(kind: str, name: str) -> str:
    return f"{Settings.from_env().key_prefix}:{kind}:{name}"


def _pass_gate(context: JobContext, gate: str, cooperative: bool) -> None:
    if not cooperative:
        _redis().blpop([_key("gate", gate)], timeout=0)  # deaf to cancellation
        return
    while _redis().blpop([_key("gate", gate)], timeout=0.1) is None:
        context.progress(0, "waiting at the gate", pid=os.getpid())


class GateInput(Schema):
    gate = fields.String(required=True)
    cooperative = fields.Boolean(load_default=True)


@job("test.gate", input_schema=GateInput, timeout=120)
def gate(context: JobContext, gate: str, cooperative: bool) -> dict[str, Any]:
    """Counts its run, then blocks until the gate opens (checking for cancellation if
    cooperative)."""
    _redis().incr(_key("runs", gate))
    _pass_gate(context, gate, cooperative)
    return {"pid": os.getpid()}


job("test.gate-once", input_schema=GateInput, timeout=120, safe_to_repeat=False)(gate)


class StepsInput(Schema):
    gate = fields.String(required=True)
    steps = fields.Integer(required=True)


@job("test.steps", input_schema=StepsInput, timeout=120)
def steps(context: JobContext, gate: str, steps: int) -> dict[str, int]:
    """Reports progress step by step, each step once the gate lets one through."""
    for step in range(1, steps + 1):
        _redis().blpop([_key("gate", gate)], timeout=0)
        context.progress(100 * step // steps, f"step {step} of {steps}", step=step)
    return {"steps": steps}


class Nothing(Schema):
    pass


@job("test.crash", input_schema=Nothing, timeout=60)
def crash(context: JobContext) -> None:
    """Kills its own pool process, every time."""
    os.kill(os.getpid(), signal.SIGKILL)


@job("test.stubborn", input_schema=GateInput, timeout=120)
def stubborn(context: JobContext, gate: str, cooperative: bool) -> None:
    """Ignores its soft time limit and blocks on, until the hard limit ends it."""
    try:
        _pass_gate(context, gate, cooperative=False)
    except SoftTimeLimitExceeded:
        _pass_gate(context, gate, cooperative=False)


class Flaky(Exception):
    """A failure worth retrying."""


class FlakyInput(Schema):
    name = fields.String(required=True)
    failures = fields.Integer(required=True)


@job("test.flaky", input_schema=FlakyInput, timeout=60, max_retries=2, retry_on=(Flaky,))
def flaky(context: JobContext, name: str, failures: int) -> dict[str, int]:
    """Fails its first `failures` runs with a retryable error."""
    run = int(_redis().incr(_key("runs", name)))
    if run <= failures:
        raise Flaky(f"run {run} fails")
    return {"runs": run}
