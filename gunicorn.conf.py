"""gunicorn settings: threaded workers, so parked WaitOperation calls cost only a thread.

It lives outside the `app` package on purpose: loading it must not import the app (and
with it prometheus-client) before the metrics directory below is set.
"""

import os
import tempfile
from typing import Any

from core.config import Settings, env_name

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


def child_exit(server: Any, worker: Any) -> None:
    """Fold a finished worker process's request metrics into the totals."""
    from prometheus_client import multiprocess  # only once the directory is set

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
