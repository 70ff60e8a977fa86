"""`python -m rpc`: the Procfile's `grpc` process, serving until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading

from core.config import Settings
from rpc.server import start

log = logging.getLogger("rpc")

GRACE_SECONDS = 10.0  # calls in flight get this long to finish on shutdown


def main() -> None:
    """Start the server on `OPQUEUE_HOST:GRPC_PORT` and stop it cleanly on a signal."""
    settings = Settings.from_env()
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    server = start(settings)
    log.info("gRPC listening on %s:%d", settings.host, server.port)
    stopping.wait()
    log.info("gRPC stopping")
    server.stop(GRACE_SECONDS)


if __name__ == "__main__":
    main()
