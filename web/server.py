"""The API (`app:create_app`) on Granian's WSGI interface: what `python -m web` serves.

Granian was chosen by measurement (bench/servers.py; README, Serving model): its HTTP
handling is Rust, so a request costs the Python side only the app's own work, and each
worker process runs the app in a pool of blocking threads that grows on demand up to
OPQUEUE_WEB_THREADS and shrinks when idle, so parked `:wait` / `:watch` calls cost an idle
thread each and leave the short requests' throughput alone.

It lives outside the `app` package on purpose: loading it must not import the app (and
with it prometheus-client) before the metrics directory below is set.
"""

from __future__ import annotations

import os
import tempfile

from granian import Granian
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server import MPServer, MTServer

from core.config import Settings, env_name

# Parked calls end within this after SIGTERM or SIGHUP (they are answered as they are);
# requests in flight finish first.
GRACEFUL_SECONDS = 10
RESPAWN_SECONDS = 1.0
# The path without its query string: page tokens (and anything a caller puts there) stay out
# of the logs; keys travel in headers, which are not logged.
API = "app:create_app"
ACCESS_LOG_FORMAT = '%(addr)s "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).0fms'


def server(settings: Settings, factory: str = API) -> MPServer | MTServer:
    """The configured server (not started) of the WSGI app `factory` builds (`module:name`;
    benchmarks serve their yardsticks the same way)."""
    # Request metrics are shared by the worker processes through files in one directory,
    # which must be set before prometheus-client is first imported (it picks its storage on
    # import); the workers inherit it.
    metrics_dir = settings.metrics_dir or tempfile.mkdtemp(prefix="opqueue-metrics-")
    os.environ[env_name("metrics_dir")] = metrics_dir
    return Granian(
        factory, factory=True, interface=Interfaces.WSGI, http=HTTPModes.http1,
        address=settings.host, port=settings.port, workers=settings.web_processes,
        blocking_threads=settings.web_threads, backpressure=settings.web_threads,
        log_level=LogLevels(settings.log_level.lower()), log_access=True,
        log_access_format=ACCESS_LOG_FORMAT, respawn_failed_workers=True,
        respawn_interval=RESPAWN_SECONDS, workers_kill_timeout=GRACEFUL_SECONDS)

