"""Waiting on a real signal: poll a probe until it answers, never a blind sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """Return the first truthy `probe()`, checking until `timeout`; the probe is the signal."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what or probe}")
        time.sleep(0.02)
