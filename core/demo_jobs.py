"""Demo jobs: `demo.sleep`, `demo.fail` and the CPU-bound `demo.primes`."""

from __future__ import annotations

import itertools
import time
from typing import Any

from core.codes import Code
from opqueue.jobs import (
    JobContext,
    Schema,
    ValidationError,
    errors,
    fields,
    job,
    validate,
    validates,
)


class SleepInput(Schema):
    seconds = fields.Float(required=True, validate=validate.Range(min=0, max=3600),
                           metadata={"description": "total time to sleep"})
    steps = fields.WholeNumber(load_default=10, validate=validate.Range(min=1, max=10_000),
                           metadata={"description": "progress reports while sleeping"})


@job("demo.sleep", input_schema=SleepInput, timeout=3700)
def sleep(context: JobContext, seconds: float, steps: int) -> dict[str, Any]:
    """Sleeps in steps, reporting progress after each one."""
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        context.progress(100 * step / steps, f"step {step} of {steps}", step=step)
    return {"slept": seconds, "steps": steps}


class FailInput(Schema):
    code = fields.String(
        load_default="INTERNAL",
        metadata={"description": "google.rpc.Code name to fail with, e.g. NOT_FOUND"})
    message = fields.String(load_default="demo.fail failed as asked",
                            validate=validate.Length(max=1000))
    unexpected = fields.Boolean(
        load_default=False,
        metadata={"description": "raise a plain exception instead (the operation ends UNKNOWN)"})

    @validates("code")
    def _known_code(self, value: str, **_: Any) -> None:
        if value not in Code.__members__ or value == "OK":
            raise ValidationError(f"must be a google.rpc.Code name other than OK, not {value!r}")


@job("demo.fail", input_schema=FailInput, timeout=60)
def fail(context: JobContext, code: str, message: str, unexpected: bool) -> None:
    """Fails with the chosen google.rpc code, or with an unexpected exception."""
    if unexpected:
        raise RuntimeError(message)
    raise errors.BY_CODE[Code[code]](message, reason="DEMO_FAILURE")


class PrimesInput(Schema):
    below = fields.WholeNumber(required=True, validate=validate.Range(min=2, max=50_000_000))
    chunks = fields.WholeNumber(load_default=10, validate=validate.Range(min=1, max=1000))


@job("demo.primes", input_schema=PrimesInput, timeout=3600)
def primes(context: JobContext, below: int, chunks: int) -> dict[str, int]:
    """Counts primes below N by trial division: pure CPU, for scaling tests."""
    count = 0
    bounds = [2 + (below - 2) * i // chunks for i in range(chunks + 1)]
    for index, (low, high) in enumerate(itertools.pairwise(bounds), start=1):
        count += sum(1 for n in range(low, high) if _is_prime(n))
        context.progress(100 * index / chunks, f"checked numbers below {high}", primes=count)
    return {"below": below, "primes": count}


def _is_prime(n: int) -> bool:
    if n < 4:
        return n >= 2
    if n % 2 == 0:
        return False
    divisor = 3
    while divisor * divisor <= n:
        if n % divisor == 0:
            return False
        divisor += 2
    return True
