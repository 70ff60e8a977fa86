"""The `google.longrunning.Operations` methods over HTTP."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app.api_keys import Role
from app.auth import caller, requires
from app.openapi import documented
from app.schemas import (
    CancelOperationRequestSchema,
    ListOperationsArgsSchema,
    WaitOperationRequestSchema,
    load_body,
    load_query,
)
from app.services import services
from core import record
from core.errors import operation_not_found
from core.filtering import compile_filter
from core.names import check_operation_id, check_project, operation_name
from core.operation import Operation
from core.states import Event, State
from core.store import OperationStore
from core.timestamps import now_micros, parse_duration
from core.webhooks import redacted
from core.wire import dump_operation

bp = Blueprint("operations", __name__, url_prefix="/v1/projects/<project>/operations")


def require_operation(store: OperationStore, project: str, operation_id: str) -> Operation:
    """The operation (its name checked); NOT_FOUND if there is none."""
    check_project(project)
    check_operation_id(operation_id)
    operation = store.get(project, operation_id)
    if operation is None:
        raise operation_not_found(operation_name(project, operation_id))
    return operation


@bp.get("")
@documented("ListOperationsResponse", query=ListOperationsArgsSchema)
def list_operations(project: str) -> dict[str, Any]:
    """ListOperations: newest first, paged by opaque tokens."""
    check_project(project)
    args = load_query(ListOperationsArgsSchema())
    svc = services()
    selected = compile_filter(args["filter"])
    page_size = min(args["page_size"] or svc.settings.default_page_size,
                    svc.settings.max_page_size)
    since, until = selected.create_time_bounds() if selected else (None, None)
    if args["page_token"]:
        cursor = svc.page_tokens.read(args["page_token"], project, args["filter"])
        until = cursor if until is None else min(cursor, until)
    page = svc.store.list_page(project, page_size, before=until, since=since,
                               matches=selected.matches if selected else None,
                               scan_limit=svc.settings.list_scan_limit)
    body: dict[str, Any] = {"operations": [dump_operation(op) for op in page.operations]}
    if page.cursor is not None:
        body["nextPageToken"] = svc.page_tokens.issue(project, args["filter"], page.cursor)
    return body


@bp.get("/<operation_id>")
@documented("Operation")
def get_operation(project: str, operation_id: str) -> dict[str, Any]:
    """GetOperation."""
    return dump_operation(require_operation(services().store, project, operation_id))


@bp.delete("/<operation_id>")
@requires(Role.SUBMITTER)
@documented("Empty")
def delete_operation(project: str, operation_id: str) -> dict[str, Any]:
    """DeleteOperation: forget the record; a running job is not cancelled."""
    check_project(project)
    check_operation_id(operation_id)
    if not services().store.delete(project, operation_id):
        raise operation_not_found(operation_name(project, operation_id))
    return {}


@bp.post("/<operation_id>:cancel")
@requires(Role.SUBMITTER)
@documented("Empty", body="CancelOperationRequest")
def cancel_operation(project: str, operation_id: str) -> dict[str, Any]:
    """CancelOperation: a queued job ends CANCELLED now, a running one is asked to stop."""
    check_project(project)
    check_operation_id(operation_id)
    load_body(CancelOperationRequestSchema())
    svc = services()
    moved = svc.store.apply(project, operation_id, Event.REQUEST_CANCEL,
                            {record.REQUESTED_CANCELLATION: now_micros()})
    if moved.before is None:
        raise operation_not_found(operation_name(project, operation_id))
    if moved.after is State.CANCELLED:
        svc.dispatcher.revoke(operation_id)
    return {}


@bp.get("/<operation_id>/webhookDeliveries")
@documented("WebhookDeliveries")
def list_webhook_deliveries(project: str, operation_id: str) -> dict[str, Any]:
    """Every webhook delivery attempt of the operation and its outcome, oldest first; the
    URL without its query or user info (they may hold a receiver's token)."""
    require_operation(services().store, project, operation_id)
    return {"deliveries": [{**entry, "url": redacted(entry["url"])} if "url" in entry else entry
                           for entry in services().outbox.history(project, operation_id)]}


@bp.post("/<operation_id>:wait")
@documented("Operation", body="WaitOperationRequest")
def wait_operation(project: str, operation_id: str) -> dict[str, Any]:
    """WaitOperation: the operation once done, or as it is when the timeout passes."""
    body = load_body(WaitOperationRequestSchema())
    svc = services()
    limit = svc.settings.max_wait_seconds
    timeout = min(parse_duration(body["timeout"], "timeout"), limit) if body["timeout"] else limit
    operation = require_operation(services().store, project, operation_id)
    if not operation.done:
        with svc.long_requests.hold(caller().id):
            svc.changes.wait([operation.name], timeout,
                             lambda: svc.store.state(project, operation_id) not in _NOT_DONE)
        operation = require_operation(services().store, project, operation_id)
    return dump_operation(operation)


_NOT_DONE = frozenset({State.PENDING, State.RUNNING, State.CANCELLING})
