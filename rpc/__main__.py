"""`python -m rpc`: the Procfile's `grpc` process, serving until SIGTERM or Ctrl-C.

With `OPQUEUE_GRPC_PROCESSES` above 1 (the default is 2, like the web process's workers) it
runs that many server processes on the one port, which the kernel spreads connections over
(SO_REUSEPORT), and stops them all when it is stopped or when any of them ends.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from multiprocessing.connection import wait

from core.config import Settings
from rpc.server import GRACE_SECONDS, serve

log = logging.getLogger("rpc")


def supervise(settings: Settings) -> int:
    """Run `settings.grpc_processes` servers; stop them all on a signal or when one ends."""
    woken, wake = os.pipe()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os.write(wake, b"."))
    # spawn, not fork: each server starts its own gRPC runtime from scratch.
    spawn = multiprocessing.get_context("spawn")
    servers = [spawn.Process(target=serve, args=(settings,), name=f"opqueue-grpc-{n}")
               for n in range(settings.grpc_processes)]
    for server in servers:
        server.start()
    signalled = woken in wait([woken, *(server.sentinel for server in servers)])
    if not signalled:
        log.error("a gRPC server process ended (pids %s alive); stopping the others",
                  [server.pid for server in servers if server.is_alive()])
    for server in servers:
        if server.is_alive():
            server.terminate()  # SIGTERM: its graceful stop
    for server in servers:
        server.join(GRACE_SECONDS + 5)
        if server.is_alive():
            server.kill()
            server.join()
    return 0 if signalled else 1


def main() -> int:
    """Serve in this process, or supervise several server processes."""
    settings = Settings.from_env()
    if settings.grpc_processes <= 1:
        serve(settings)
        return 0
    return supervise(settings)


if __name__ == "__main__":
    sys.exit(main())
