"""`make run`'s launcher, as a newcomer uses it: from their own project directory, with their
own job module, stopped with Ctrl-C (SIGINT to its process group, as a terminal sends it)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from google.longrunning import operations_pb2, operations_pb2_grpc

from core.embedded_redis import free_port
from tests.launcher import LAUNCHER, launched, launcher_env
from tests.stack import eventually

JOBS = {"OPQUEUE_JOB_MODULES": "core.demo_jobs,greetings.jobs"}
USER_JOB = '''\
from opqueue.jobs import JobContext, Schema, errors, fields, job, validate


class GreetInput(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1))
    times = fields.WholeNumber(load_default=1)


@job("greetings.greet", input_schema=GreetInput, timeout=60)
def greet(context: JobContext, name: str, times: int) -> dict[str, str]:
    """Greets someone."""
    if name == "nobody":
        raise errors.InvalidArgument("nobody cannot be greeted", reason="NOBODY")
    context.progress(50, "greeting")
    return {"greeting": " ".join(["hello"] * times) + f", {name}"}
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project directory holding a job module of their own."""
    (tmp_path / "greetings").mkdir()
    (tmp_path / "greetings" / "__init__.py").write_text("")
    (tmp_path / "greetings" / "jobs.py").write_text(USER_JOB)
    return tmp_path


def run_job(base: str, job: str, job_input: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(f"{base}/v1/projects/demo/jobs/{job}:run",
                           json={"input": job_input}, timeout=10)
    assert answer.status_code == 200, answer.text
    operation: dict[str, Any] = answer.json()
    return operation


def finished(base: str, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        operation: dict[str, Any] = requests.post(
            f"{base}/v1/{name}:wait", json={"timeout": "5s"}, timeout=15).json()
        return operation if operation["done"] else None

    return eventually(done, timeout=90, what=f"{name} to finish")


def test_a_job_module_in_the_project_directory_runs_and_ctrl_c_stops_cleanly(
        project: Path) -> None:
    port, grpc_port, log = free_port(), free_port(), project / "run.log"
    with socket.socket() as squatter:  # the embedded Redis's usual port is taken
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with launched(project, port, log, OPQUEUE_EMBEDDED_REDIS_PORT=str(taken),
                      GRPC_PORT=str(grpc_port), **JOBS) as base:
            operation = run_job(base, "greetings.greet", {"name": "Ada", "times": 2})
            done = finished(base, operation["name"])
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:  # the grpc process
                over_grpc = operations_pb2_grpc.OperationsStub(channel).GetOperation(
                    operations_pb2.GetOperationRequest(name=operation["name"]), timeout=10,
                    wait_for_ready=True)
            failed = finished(base, run_job(base, "greetings.greet", {"name": "nobody"})["name"])
            assert requests.get(base, allow_redirects=False, timeout=10).headers["Location"] \
                .endswith("/ui")
    assert done["metadata"]["state"] == "SUCCEEDED"
    assert done["response"]["value"] == {"greeting": "hello hello, Ada"}
    assert (over_grpc.name, over_grpc.done) == (operation["name"], True)
    assert failed["error"]["message"] == "nobody cannot be greeted"
    output = log.read_text()
    assert f"port {taken} is taken: the embedded Redis uses" in output
    for line in (f"opqueue is ready at {base}", f"dashboard:     {base}/ui",
                 f"API docs:      {base}/docs", f"gRPC:          127.0.0.1:{grpc_port}",
                 "Redis:         redis://127.0.0.1:",
                 f"curl -s -X POST {base}/v1/projects/demo/jobs/demo.sleep:run"):
        assert line in output
    assert "Traceback" not in output
    assert (project / "var" / "redis" / "redis.log").exists()


@pytest.mark.timeout(600)
def test_a_running_job_survives_five_clean_restarts_without_spending_redeliveries(
        project: Path) -> None:
    port = free_port()
    # One redelivery allowed: five stops that each counted would abort the job.
    limits = {"OPQUEUE_MAX_REDELIVERIES": "1", **JOBS}
    with launched(project, port, project / "run-0.log", **limits) as base:
        name = run_job(base, "demo.sleep", {"seconds": 10, "steps": 20})["name"]
        running_in(base, name)
    for cycle in range(1, 6):
        with launched(project, port, project / f"run-{cycle}.log", **limits) as base:
            assert running_in(base, name)["metadata"]["attempt"] == 1
    with launched(project, port, project / "run-6.log", **limits) as base:
        done = finished(base, name)
    assert done["metadata"]["state"] == "SUCCEEDED", done
    assert done["metadata"]["attempt"] == 1
    assert "queued again" not in done["metadata"]["statusMessage"]
    for log in sorted(project.glob("run-*.log")):
        assert "Traceback" not in log.read_text(), log.name
    assert "handed back" in (project / "run-1.log").read_text()


def running_in(base: str, name: str) -> dict[str, Any]:
    """The operation, once this run of the launcher has its job running and reporting."""
    def running() -> dict[str, Any] | None:
        operation: dict[str, Any] = requests.get(f"{base}/v1/{name}", timeout=10).json()
        metadata = operation["metadata"]
        return operation if metadata["state"] == "RUNNING" \
            and metadata.get("statusMessage", "").startswith("step") else None

    return eventually(running, timeout=60, what=f"{name} to run")


def test_an_unimportable_job_module_stops_startup_with_one_line(project: Path) -> None:
    env = launcher_env(project, free_port(), OPQUEUE_JOB_MODULES="greetings.missing")
    result = subprocess.run([sys.executable, str(LAUNCHER)], cwd=project, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "opqueue: cannot import job module 'greetings.missing' listed in OPQUEUE_JOB_MODULES: "
        "ModuleNotFoundError: No module named 'greetings.missing'"]


def test_a_taken_port_is_one_line_saying_how_to_choose_another(project: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = subprocess.run([sys.executable, str(LAUNCHER)], cwd=project,
                                env=launcher_env(project, port, **JOBS), capture_output=True,
                                text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"opqueue: port {port} on 127.0.0.1 is taken (is opqueue already running?); choose "
        f"another with PORT, e.g. PORT={port + 1} make run"]
