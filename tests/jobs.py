"""Jobs for integration tests: they block on Redis lists ("gates") the test opens, so tests
synchronise on real signals instead of sleeping."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import redis
from marshmallow import Schema, fields

from core.config import Settings
from core.connection import redis_client
from core.jobs import JobContext, job


@cache
def _redis() -> redis.Redis:
    return redis_client(Settings.from_env().redis_url)


def _gate(name: str) -> str:
    return f"{Settings.from_env().key_prefix}:gate:{name}"


class GateInput(Schema):
    gate = fields.String(required=True)
    cooperative = fields.Boolean(load_default=True)


@job("test.gate", input_schema=GateInput, timeout=120)
def gate(context: JobContext, gate: str, cooperative: bool) -> dict[str, Any]:
    """Blocks until the gate opens; a cooperative one checks for cancellation meanwhile."""
    if not cooperative:
        _redis().blpop([_gate(gate)], timeout=0)  # deaf to cancellation until terminated
        return {"pid": os.getpid()}
    while _redis().blpop([_gate(gate)], timeout=0.1) is None:
        context.progress(0, "waiting at the gate")
    return {"pid": os.getpid()}


class StepsInput(Schema):
    gate = fields.String(required=True)
    steps = fields.Integer(required=True)


@job("test.steps", input_schema=StepsInput, timeout=120)
def steps(context: JobContext, gate: str, steps: int) -> dict[str, int]:
    """Reports progress step by step, each step once the gate lets one through."""
    for step in range(1, steps + 1):
        _redis().blpop([_gate(gate)], timeout=0)
        context.progress(100 * step // steps, f"step {step} of {steps}", step=step)
    return {"steps": steps}
