"""The yardstick: a bare Celery app on the same broker, a no-op task, JSON only.

Nothing of opqueue is imported, so the baseline pays only for Celery itself. Its broker keys
and result keys live under a prefix of their own (inside the bench stack's, so the stack's
cleanup removes them) and it uses its own queue. Its worker is started as

    celery -A bench.baseline worker ...

with `BENCH_BASELINE_BROKER`, `BENCH_BASELINE_PREFIX` and `BENCH_BASELINE_RESULTS` (the
Redis URL of its result backend, or empty for none) in the environment (see
`start_worker`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from celery import Celery

TASK = "bench.noop"
ENV_BROKER, ENV_PREFIX, ENV_RESULTS = ("BENCH_BASELINE_BROKER", "BENCH_BASELINE_PREFIX",
                                       "BENCH_BASELINE_RESULTS")


def noop() -> None:
    """Does nothing: the baseline's job."""


def baseline_app(broker_url: str, prefix: str, *, results: str = "") -> Celery:
    """A plain Celery app: JSON, late acks, prefetch 1 (as opqueue's), and its results in the
    Redis at `results`, if given."""
    app = Celery("bench-baseline", set_as_current=False)
    keyprefix = {"global_keyprefix": f"{prefix}:"}
    app.conf.update(
        broker_url=broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options=keyprefix,
        task_default_queue=prefix,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        task_ignore_result=not results,
        result_backend=results or None,
        result_backend_transport_options=keyprefix,
    )
    app.task(name=TASK, typing=False)(noop)
    return app


def result_key(prefix: str, task_id: str) -> str:
    """Where the Redis result backend keeps one task's result."""
    return f"{prefix}:celery-task-meta-{task_id}"


def start_worker(broker_url: str, prefix: str, concurrency: int, log: Path, *,
                 results: str, events: bool = False) -> subprocess.Popen[bytes]:
    """The baseline's worker, with the flags `tests.stack.Stack.start_worker` gives opqueue's
    (and, with `events`, sending task events, as Flower needs)."""
    env = {**os.environ, ENV_BROKER: broker_url, ENV_PREFIX: prefix,
           ENV_RESULTS: results,
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [str(Path(sys.executable).parent / "celery"), "-A", "bench.baseline", "worker",
               "--loglevel", "INFO", "-n", f"baseline-{os.getpid()}@%h",
               "--concurrency", str(concurrency), "--without-gossip", *(["-E"] if events else [])]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def __getattr__(name: str) -> Any:
    # `celery -A bench.baseline` looks up `app`: built from the environment, not at import.
    if name == "app":
        built = baseline_app(os.environ[ENV_BROKER], os.environ[ENV_PREFIX],
                             results=os.environ.get(ENV_RESULTS, ""))
        globals()["app"] = built
        return built
    raise AttributeError(name)
