"""Bounds on what a request may carry, beyond the body size gunicorn and Flask enforce."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.config import Settings
from core.errors import InvalidArgument


def json_depth(value: Any) -> int:
    """How deeply `value` nests objects and arrays (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_depth(value: Any, settings: Settings) -> None:
    """INVALID_ARGUMENT if a request body nests deeper than allowed."""
    if json_depth(value) > settings.max_json_depth:
        raise InvalidArgument(f"the request body nests deeper than {settings.max_json_depth} "
                              "levels", reason="JSON_TOO_DEEP")

