"""`make run`'s launcher: embedded Redis with persistence, honcho running the Procfile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import requests
from google.longrunning import operations_pb2, operations_pb2_grpc

from core.embedded_redis import free_port
from tests.stack import ROOT, eventually


@contextmanager
def launched(data_dir: Path, port: int, log: Path, grpc_port: int) -> Iterator[str]:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(PORT=str(port), GRPC_PORT=str(grpc_port), OPQUEUE_DATA_DIR=str(data_dir),
               PYTHONPATH=str(ROOT))
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "scripts/run.py"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        eventually(lambda: "opqueue is ready at" in log.read_text(), timeout=60,
                   what="make run to print its banner")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def test_make_run_serves_on_embedded_redis_and_keeps_operations_across_restarts(
        tmp_path: Path) -> None:
    port, grpc_port, log = free_port(), free_port(), tmp_path / "first-run.log"
    with launched(tmp_path / "data", port, log, grpc_port) as base:
        submitted = requests.post(f"{base}/v1/projects/demo/jobs/demo.sleep:run",
                                  json={"input": {"seconds": 0.1, "steps": 1}}, timeout=10).json()
        done = requests.post(f"{base}/v1/{submitted['name']}:wait", json={"timeout": "30s"},
                             timeout=40).json()
        assert done["metadata"]["state"] == "SUCCEEDED"
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:  # the grpc process
            got = operations_pb2_grpc.OperationsStub(channel).GetOperation(
                operations_pb2.GetOperationRequest(name=submitted["name"]), timeout=10,
                wait_for_ready=True)
        assert got.done
    banner = log.read_text()
    assert f"curl -s -X POST {base}/v1/projects/demo/jobs/demo.sleep:run" in banner
    assert "embedded Redis" in banner
    assert "no API keys configured" in banner
    assert (tmp_path / "data" / "redis" / "redis.log").exists()

    with launched(tmp_path / "data", port, tmp_path / "second-run.log", grpc_port) as base:
        again = requests.get(f"{base}/v1/{submitted['name']}", timeout=10).json()
        assert again == done
