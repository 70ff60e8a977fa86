"""Resource names, ids, timestamps and durations as they appear on the wire."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime

from core.errors import InvalidArgument

PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
OPERATION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
JOB_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
DURATION = re.compile(r"(\d{1,12})(?:\.(\d{1,9}))?s")


def operation_name(project: str, operation_id: str) -> str:
    """`projects/{project}/operations/{operation_id}`."""
    return f"projects/{project}/operations/{operation_id}"


def new_operation_id() -> str:
    """A random canonical UUID, used as both operation id and Celery task id."""
    return str(uuid.uuid4())


def check_project(project: str) -> str:
    """Return `project` if it is a valid project id, else raise INVALID_ARGUMENT."""
    if not PROJECT_ID.fullmatch(project):
        raise InvalidArgument(
            f"project id {_shown(project)} is invalid: use 1-63 lowercase letters, digits "
            "and hyphens, starting with a letter",
            reason="INVALID_PROJECT_ID",
        )
    return project


def check_operation_id(operation_id: str) -> str:
    """Return `operation_id` if it is a canonical lowercase UUID, else raise."""
    if not OPERATION_ID.fullmatch(operation_id):
        raise InvalidArgument(
            f"operation id {_shown(operation_id)} is invalid: operation ids are lowercase UUIDs",
            reason="INVALID_OPERATION_ID",
        )
    return operation_id


def check_job_name(job: str) -> str:
    """Return `job` if it is a well-formed job name, else raise INVALID_ARGUMENT."""
    if not JOB_NAME.fullmatch(job):
        raise InvalidArgument(
            f"job name {_shown(job)} is invalid: use lowercase letters, digits, '.', '_' and '-'",
            reason="INVALID_JOB_NAME",
        )
    return job


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
            {field: f"{_shown(str(text))} is not a duration: write seconds with an 's', e.g. '30s'"}
        )
    whole, fraction = match.groups()
    return int(whole) + (int(fraction.ljust(9, "0")) / 1e9 if fraction else 0.0)


def _shown(value: str) -> str:
    """A name quoted for an error message, shortened so a huge input stays a short message."""
    return repr(value if len(value) <= 80 else value[:77] + "...")
