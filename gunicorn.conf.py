"""gunicorn settings: threaded workers, so parked WaitOperation calls cost only a thread.

It lives outside the `app` package on purpose: loading it must not import the app (and
with it prometheus-client) before the metrics directory below is set.
"""

import json
import os
import tempfile
from http import HTTPStatus
from typing import Any

from gunicorn import util

from core.codes import HTTP_STATUS
from core.config import Settings, env_name
from core.errors import (
    Internal,
    InvalidArgument,
    OperationError,
    PermissionDenied,
    Unimplemented,
)

_settings = Settings.from_env()
# Request metrics are shared by the worker processes through files in one directory, which
# must be set before prometheus-client is first imported (it picks its storage on import).
_metrics_dir = _settings.metrics_dir or tempfile.mkdtemp(prefix="opqueue-metrics-")
os.environ[env_name("metrics_dir")] = _metrics_dir

bind = [f"{_settings.host}:{_settings.port}"]
workers = _settings.web_processes
worker_class = "gthread"
threads = _settings.web_threads
# WaitOperation holds a request up to max_wait_seconds; give it room before the worker timeout.
timeout = int(_settings.max_wait_seconds) + 30
graceful_timeout = 10
keepalive = 5
accesslog = "-"
# The path without its query string: page tokens (and anything a caller puts there) stay out
# of the logs; keys travel in headers, which are not logged.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
loglevel = _settings.log_level.lower()
# gunicorn's defaults, spelled out: the refusals below name them.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190


def child_exit(server: Any, worker: Any) -> None:
    """Fold a finished worker process's request metrics into the totals."""
    from prometheus_client import multiprocess  # only once the directory is set

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


# gunicorn answers some requests itself, before the app sees them (a request line or headers
# over its limits, malformed HTTP). Every answer of this service is the Google error
# envelope, so its writer of those answers (`gunicorn.util.write_error`, which every worker
# calls with the HTTP status gunicorn chose) is replaced by one writing the envelope.
_SERVER_REFUSALS: dict[int, OperationError] = {
    414: InvalidArgument("the request line (method, path and query) is too long; the limit "
                         f"is {limit_request_line} bytes", reason="REQUEST_LINE_TOO_LONG"),
    431: InvalidArgument(f"the request headers are too many or too large (at most "
                         f"{limit_request_fields} headers of {limit_request_field_size} bytes)",
                         reason="REQUEST_HEADERS_TOO_LARGE"),
    403: PermissionDenied("the server refused this connection", reason="FORBIDDEN_BY_SERVER"),
    501: Unimplemented("the request's transfer coding is not supported; send "
                       "'Content-Length' or 'Transfer-Encoding: chunked'",
                       reason="UNSUPPORTED_TRANSFER_CODING"),
}
_MALFORMED = InvalidArgument("the request is not valid HTTP/1.1", reason="MALFORMED_REQUEST")


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own refusal `status_int`, as the Google error envelope."""
    error = _SERVER_REFUSALS.get(status_int, _MALFORMED)
    if status_int >= 500 and status_int != 501:  # an app failure gunicorn caught
        error = Internal("internal error", reason="INTERNAL_ERROR")
    body = json.dumps(error.envelope()).encode()
    status = HTTP_STATUS[error.code]
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin1") + body)


util.write_error = write_json_error
