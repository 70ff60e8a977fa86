"""The Procfile's `grpc` process: several server processes on one port, stopped as one."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

from core.embedded_redis import free_port
from tests.stack import ROOT, Stack, eventually, grpc_serving, procfile_command


@contextmanager
def grpc_process(stack: Stack, log: Path) -> Iterator[tuple[subprocess.Popen[bytes],
                                                            list[psutil.Process]]]:
    """`python -m rpc` with two servers on a port of its own; its server processes."""
    target = f"127.0.0.1:{free_port()}"
    env = {**stack.env, "GRPC_PORT": target.rsplit(":", 1)[1], "OPQUEUE_GRPC_PROCESSES": "2"}
    with log.open("ab") as out:
        process = subprocess.Popen(procfile_command("grpc"), cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    servers: list[psutil.Process] = []
    try:
        eventually(lambda: grpc_serving(target), what="the gRPC servers to serve")
        servers += eventually(lambda: [
            child for child in psutil.Process(process.pid).children()
            if "resource_tracker" not in " ".join(child.cmdline())] or None)
        yield process, servers
    finally:
        for each in [process, *servers]:  # whatever a failed test left running
            with suppress(ProcessLookupError, psutil.NoSuchProcess):
                each.kill()
        process.wait()


def test_a_signal_stops_every_server(stack: Stack, tmp_path: Path) -> None:
    with grpc_process(stack, tmp_path / "grpc.log") as (process, servers):
        assert len(servers) == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        _, alive = psutil.wait_procs(servers, timeout=30)
        assert alive == []


def test_a_server_that_dies_takes_the_process_down(stack: Stack, tmp_path: Path) -> None:
    # So that the platform running the Procfile (honcho, compose) sees it and restarts it.
    with grpc_process(stack, tmp_path / "grpc.log") as (process, servers):
        servers[0].kill()
        assert process.wait(timeout=30) == 1
        _, alive = psutil.wait_procs(servers, timeout=30)
        assert alive == []
        assert "a gRPC server process ended" in (tmp_path / "grpc.log").read_text()
