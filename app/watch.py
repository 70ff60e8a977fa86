"""Server-sent events: an operation's (or a project's) changes, pushed as they happen.

`GET .../operations/{id}:watch` sends the operation as it is (event `snapshot`), then the
Operation after each change, and ends once it is done. `GET .../operations:watch` sends
every change in the project, for at most OPQUEUE_MAX_WATCH_SECONDS. Each event's id is
its entry in the project's change stream: reconnecting with `Last-Event-ID` resumes right
after it. An idle client holds one parked thread (as a WaitOperation does) and no Redis
connection; a comment line every 15 s keeps proxies from closing the stream.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

from flask import Blueprint, Response, request, stream_with_context

from app.openapi import documented
from app.services import Services, services
from core.errors import InvalidArgument, operation_not_found
from core.names import check_operation_id, check_project, operation_name
from core.states import TERMINAL
from core.wire import dump_operation

bp = Blueprint("watch", __name__)

KEEP_ALIVE_SECONDS = 15.0
STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
DONE_STATES = frozenset(state.value for state in TERMINAL)


@bp.get("/v1/projects/<project>/operations/<operation_id>:watch")
@documented("EventStream", content="text/event-stream")
def watch_operation(project: str, operation_id: str) -> Response:
    """WatchOperation: the operation's updates as server-sent events, until it is done."""
    check_project(project)
    check_operation_id(operation_id)
    name = operation_name(project, operation_id)
    svc = services()
    if svc.store.get(project, operation_id) is None and _resume_from() is None:
        raise operation_not_found(name)
    return _event_stream(svc, project, name)


@bp.get("/v1/projects/<project>/operations:watch")
@documented("EventStream", content="text/event-stream")
def watch_operations(project: str) -> Response:
    """WatchOperations: every change in the project as server-sent events."""
    check_project(project)
    return _event_stream(services(), project, None)


def _resume_from() -> str | None:
    last = request.headers.get("Last-Event-ID")
    if last is None:
        return None
    if not STREAM_ID.fullmatch(last):
        raise InvalidArgument("Last-Event-ID is not an event id this service sent",
                              reason="INVALID_LAST_EVENT_ID")
    return last


def _event_stream(svc: Services, project: str, name: str | None) -> Response:
    resume = _resume_from()
    events = _events(svc, project, name, resume)
    response = Response(stream_with_context(events), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass events through at once
    return response


def _events(svc: Services, project: str, name: str | None, last: str | None) -> Iterator[str]:
    store = svc.store
    deadline = time.monotonic() + svc.settings.max_watch_seconds
    yield ": watching\n\n"  # at once, so a client knows the stream is live before any change
    if last is None:
        last = store.stream_tip(project)
        if name is not None:
            operation = store.get(project, name.rsplit("/", 1)[1])
            if operation is None:
                return
            yield _frame(last, "snapshot", dump_operation(operation))
            if operation.done:
                return
    topic = name or f"projects/{project}"
    while time.monotonic() < deadline:
        entries = store.changes_after(project, last)
        for entry_id, change in entries:
            last = entry_id
            if name is not None and change["name"] != name:
                continue
            yield _frame(entry_id, change["event"], _payload(svc, change))
            if name is not None and (change["state"] in DONE_STATES
                                     or change["event"] == "delete"):
                return
        if entries:
            continue
        remaining = min(KEEP_ALIVE_SECONDS, deadline - time.monotonic())
        if not svc.changes.wait([topic], remaining, partial(_has_news, svc, project, last)):
            yield ": keep-alive\n\n"


def _has_news(svc: Services, project: str, after: str) -> bool:
    return bool(svc.store.changes_after(project, after, count=1))


def _payload(svc: Services, change: dict[str, str]) -> dict[str, Any]:
    project, operation_id = change["name"].split("/")[1], change["name"].rsplit("/", 1)[1]
    operation = None if change["event"] == "delete" else svc.store.get(project, operation_id)
    if operation is None:
        return {"name": change["name"], "deleted": True}
    return dump_operation(operation)


def _frame(event_id: str, event: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
