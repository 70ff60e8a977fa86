"""Timestamps and durations: the clock opqueue records, and their protobuf JSON forms."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from core.errors import InvalidArgument
from core.names import shown

DURATION = re.compile(r"(\d{1,12})(?:\.(\d{1,9}))?s")


def now_micros() -> int:
    """Microseconds since the Unix epoch."""
    return time.time_ns() // 1000


def format_timestamp(micros: int) -> str:
    """RFC 3339 in UTC with six fractional digits and a `Z`, as protobuf's Timestamp JSON."""
    seconds, fraction = divmod(micros, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:06d}Z"


def parse_duration(text: str, field: str) -> float:
    """Seconds in a protobuf Duration string such as `30s` or `1.5s`."""
    match = DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidArgument.for_fields(
            {field: f"{shown(str(text))} is not a duration: write seconds with an 's', e.g. '30s'"}
        )
    whole, fraction = match.groups()
    return int(whole) + (int(fraction.ljust(9, "0")) / 1e9 if fraction else 0.0)
