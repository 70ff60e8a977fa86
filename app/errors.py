"""The one error renderer: every error leaves the API as the Google error envelope.

`OperationError`s, werkzeug's HTTP errors, Redis and broker outages and anything
unexpected all end here; views never build error JSON, and no traceback reaches a client.
"""

from __future__ import annotations

import logging
import math

import kombu.exceptions
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from core.codes import HTTP_STATUS
from core.connection import UNREACHABLE
from core.errors import (
    Internal,
    InvalidArgument,
    NotFound,
    OperationError,
    Unavailable,
)

log = logging.getLogger(__name__)

# An oversize body is read and dropped up to this much, so that the client, still sending,
# gets our error instead of a reset connection; past it the connection is simply closed.
DISCARD_LIMIT_BYTES = 32 * 1024 * 1024

# werkzeug's own errors, as the google.rpc error a Google API would answer with.
HTTP_ERRORS: dict[int, type[OperationError]] = {
    400: InvalidArgument,
    404: NotFound,
    405: NotFound,
    413: InvalidArgument,
    415: InvalidArgument,
}
HTTP_REASONS = {
    400: "BAD_REQUEST",
    404: "ROUTE_NOT_FOUND",
    405: "METHOD_NOT_FOUND",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def envelope(error: OperationError) -> Response:
    """`{"error": {code, message, status, details}}` with the code's HTTP status, and
    `Retry-After` (whole seconds, rounded up) when the error says when to retry."""
    response = jsonify(error.envelope())
    response.status_code = HTTP_STATUS[error.code]
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(math.ceil(error.retry_after))
    return response


def from_http_exception(exc: HTTPException) -> OperationError:
    """The Google error for a werkzeug HTTP error (unknown route, wrong method, ...)."""
    status = exc.code or 500
    kind = HTTP_ERRORS.get(status, Internal)
    reason = HTTP_REASONS.get(status, "HTTP_ERROR")
    if status == 404:
        message = f"no route matches {request.method} {request.path}"
    elif isinstance(exc, MethodNotAllowed):
        allowed = ", ".join(sorted(exc.valid_methods or ()))
        message = f"{request.method} is not supported on {request.path}; use {allowed}"
    elif status == 413:
        message = "the request body is too large"
    else:
        message = exc.description or exc.name
    return kind(message, reason=reason)


def register_error_handlers(app: Flask) -> None:
    """Install the renderer for every kind of error."""

    @app.errorhandler(OperationError)
    def _operation_error(exc: OperationError) -> Response:
        return envelope(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if isinstance(exc, RequestEntityTooLarge):
            _discard_unread_body()
        response = envelope(from_http_exception(exc))
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response

    @app.errorhandler(kombu.exceptions.OperationalError)
    def _unavailable(exc: Exception) -> Response:
        log.warning("backend unavailable during %s %s: %s", request.method, request.path,
                    type(exc).__name__)
        return envelope(Unavailable("the operation store or broker is unreachable; retry",
                                    reason="BACKEND_UNAVAILABLE"))

    for unreachable in UNREACHABLE:  # the store, failing over or gone for the moment
        app.register_error_handler(unreachable, _unavailable)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return envelope(Internal("internal error", reason="INTERNAL_ERROR"))

    del _operation_error, _http_error, _unavailable, _unexpected


def _discard_unread_body() -> None:
    stream = request.environ.get("wsgi.input")
    remaining = DISCARD_LIMIT_BYTES
    while stream is not None and remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            return
        remaining -= len(chunk)
