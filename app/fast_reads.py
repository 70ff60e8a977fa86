"""GetOperation without Flask's per-request machinery: the API's hottest read.

A GetOperation is one `HGETALL`; Flask's request context, routing, hooks and response
object cost more than that read and its rendering together (bench/RESULTS.md). This WSGI
middleware answers `GET /v1/projects/{p}/operations/{id}` itself, in the order the Flask
route takes the same steps and with the same functions: the request-head limits, the
caller's authorization as a reader, the name checks and the read (`require_operation`), the
rendering, and the request metric. Its errors are the same envelopes. Every other request
(a body, an id with a `:` method, anything unexpected going wrong) goes to Flask unchanged.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from app.api_keys import Role
from app.auth import presented_key
from app.metrics import REQUEST_SECONDS
from app.operations import get_operation, require_operation
from app.request_limits import check_head_of
from app.services import Services
from core.codes import HTTP_STATUS
from core.errors import OperationError
from core.wire import dump_operation

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# The path of GetOperation's route; an id with a `:` is a custom method's (Flask's 404/405).
_PATH = re.compile(r"/v1/projects/([^/]+)/operations/([^/:]+)")
_BODY_HEADERS = ("CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING")


class FastReads:
    """The WSGI app answering GetOperation itself and everything else through Flask."""

    def __init__(self, app: Flask, services: Services) -> None:
        self._flask: WsgiApp = app.wsgi_app
        self._services = services
        self._rule = next(rule.rule for rule in app.url_map.iter_rules()
                          if app.view_functions[rule.endpoint] is get_operation)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        match = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        if (match is None or environ["REQUEST_METHOD"] != "GET"
                or any(environ.get(header) for header in _BODY_HEADERS)):
            return self._flask(environ, start_response)
        started = time.perf_counter()
        try:
            status, body, headers = 200, self._operation(environ, *match.groups()), []
        except OperationError as error:
            status, body = HTTP_STATUS[error.code], error.envelope()
            headers = ([] if error.retry_after is None
                       else [("Retry-After", str(math.ceil(error.retry_after)))])
        except Exception:  # Flask renders (and logs) outages and anything unexpected
            return self._flask(environ, start_response)
        encoded = json.dumps(body, separators=(",", ":")).encode() + b"\n"  # as Flask's
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN')}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(encoded))),
            *headers])
        REQUEST_SECONDS.labels(self._rule, "GET", str(status)).observe(
            time.perf_counter() - started)
        return [encoded]

    def _operation(self, environ: dict[str, Any], project: str,
                   operation_id: str) -> dict[str, Any]:
        check_head_of(environ)
        self._services.authorizer.authorize(
            presented_key(environ.get("HTTP_AUTHORIZATION", ""),
                          environ.get("HTTP_X_GOOG_API_KEY", "")),
            project, Role.READER, environ.get("REMOTE_ADDR", ""),
            host=environ.get("HTTP_HOST", ""), origin=environ.get("HTTP_ORIGIN"))
        return dump_operation(require_operation(self._services.store, project, operation_id))

