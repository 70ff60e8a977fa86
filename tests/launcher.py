"""`make run`'s launcher (scripts/run.py) started as a user starts it, from a project
directory, and stopped as a terminal's Ctrl-C stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

from core.embedded_redis import free_port
from tests.stack import ROOT, eventually

LAUNCHER = ROOT / "scripts" / "run.py"


def launcher_env(project: Path, port: int, **extra: str) -> dict[str, str]:
    """`make run`'s defaults, but on free ports, with its data in `project`, plus `extra`."""
    env = {key: value for key, value in os.environ.items()
           if key not in {"REDIS_URL", "PYTHONPATH"}}
    env.update({"PORT": str(port), "OPQUEUE_DATA_DIR": str(project / "var"),
                "GRPC_PORT": str(free_port()),
                "OPQUEUE_EMBEDDED_REDIS_PORT": str(free_port()), **extra})
    return env


@contextmanager
def launched(project: Path, port: int, log: Path, **extra: str) -> Iterator[str]:
    """Run the launcher from `project` until the block ends, then press Ctrl-C.

    On every path, whatever it started is gone afterwards; a clean stop (exit code 0, nothing
    left running) is asserted when the block itself succeeded.
    """
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, str(LAUNCHER)], cwd=project,
                                   env=launcher_env(project, port, **extra), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    family: list[psutil.Process] = []
    try:
        def ready() -> bool:
            family[:] = _family(process.pid)
            if process.poll() is not None:
                raise AssertionError(f"the launcher exited early:\n{log.read_text()}")
            return "opqueue is ready at" in log.read_text()

        eventually(ready, timeout=90, what="make run to print its banner")
        yield f"http://127.0.0.1:{port}"
        family[:] = _family(process.pid)
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert process.wait(timeout=30) == 0
        _, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, f"left running after Ctrl-C: {alive}"
    finally:  # after a failure or a timeout too
        if process.poll() is None:
            family.append(psutil.Process(process.pid))
        for member in family:
            _kill(member)
        process.wait()


def _family(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _kill(process: psutil.Process) -> None:
    with suppress(psutil.NoSuchProcess):
        process.kill()
