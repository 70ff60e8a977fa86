"""How an Operation is laid out in its Redis hash.

Field names are short because every byte is paid once per stored operation; absent or
default values are not stored at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from core.operation import Operation
from core.states import State

JOB = "job"
STATE = "state"
CREATE_TIME = "ct"
UPDATE_TIME = "ut"
START_TIME = "st"
END_TIME = "et"
PROGRESS_PERCENT = "pct"
STATUS_MESSAGE = "msg"
DETAILS = "det"
NOTIFY_URL = "ntfu"  # where webhooks go
NOTIFY_EVENTS = "ntfe"  # which: "done", or "done,progress"
ATTEMPT = "att"
WORKER = "wkr"
REQUESTED_CANCELLATION = "cxl"  # when cancellation was asked for, microseconds
LABELS = "lbl"
REQUEST_ID = "rid"
RESPONSE = "resp"
ERROR = "err"
LEASE = "lease"  # until when the running worker holds the operation, microseconds
CHANGE_TOKEN = "tok"  # "token|state before" of the last change, until done (transition.lua)


# A done operation's fields left out of its hash when they hold these values
# (transition.lua): its update time is its end time, and a succeeded one is at 100 %.
IMPLIED: dict[str, dict[str, str]] = {State.SUCCEEDED.value: {PROGRESS_PERCENT: "100"}}


def encode_json(value: Any) -> str:
    """Compact JSON, as stored in hash fields."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def new_fields(job: str, labels: Mapping[str, str], request_id: str,
               notify: tuple[str, tuple[str, ...]] | None = None) -> dict[str, str]:
    """The fields of a freshly created PENDING operation (times are added by the store)."""
    fields = {JOB: job, STATE: State.PENDING.value}
    if notify is not None:
        fields[NOTIFY_URL], fields[NOTIFY_EVENTS] = notify[0], ",".join(notify[1])
    if labels:
        fields[LABELS] = encode_json(dict(labels))
    if request_id:
        fields[REQUEST_ID] = request_id
    return fields


def decode(project: str, operation_id: str, raw: Mapping[str, str]) -> Operation:
    """Rebuild an Operation from its hash."""
    implied = IMPLIED.get(raw[STATE], {})
    return Operation(
        project=project,
        id=operation_id,
        job=raw[JOB],
        state=State(raw[STATE]),
        create_time=int(raw[CREATE_TIME]),
        update_time=int(raw.get(UPDATE_TIME) or raw[END_TIME]),
        start_time=_optional_int(raw.get(START_TIME)),
        end_time=_optional_int(raw.get(END_TIME)),
        progress_percent=int(raw.get(PROGRESS_PERCENT, implied.get(PROGRESS_PERCENT, 0))),
        status_message=raw.get(STATUS_MESSAGE, ""),
        details=json.loads(raw[DETAILS]) if DETAILS in raw else {},
        attempt=int(raw.get(ATTEMPT, 0)),
        worker=raw.get(WORKER, ""),
        requested_cancellation=REQUESTED_CANCELLATION in raw,
        labels=json.loads(raw[LABELS]) if LABELS in raw else {},
        request_id=raw.get(REQUEST_ID, ""),
        notify_url=raw.get(NOTIFY_URL, ""),
        response=json.loads(raw[RESPONSE]) if RESPONSE in raw else None,
        error=json.loads(raw[ERROR]) if ERROR in raw else None,
    )


def _optional_int(value: str | None) -> int | None:
    return None if value is None else int(value)
