"""Flower, the HTTP API Celery users reach for, on the same Redis and Celery as the bench
baseline (bench/baseline.py): `celery -A bench.baseline flower`, its API open without
authentication (FLOWER_UNAUTHENTICATED_API), on a loopback port of its own.

Flower submits with `POST /api/task/async-apply/{name}` (Celery's `apply_async`) and answers
`GET /api/task/info/{id}` from the task events it gathers from the workers, so a task it can
describe must have run on a worker sending events (`-E`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from celery import Celery

from bench import baseline
from core.embedded_redis import free_port
from tests.waiting import eventually


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:  # not listening yet
        return False


@contextmanager
def flower(broker_url: str, prefix: str, log: Path) -> Iterator[str]:
    """A Flower process watching the baseline app of `prefix` while the block runs: its base
    URL."""
    port = free_port()
    env = {**os.environ, baseline.ENV_BROKER: broker_url, baseline.ENV_PREFIX: prefix,
           baseline.ENV_RESULTS: "", "FLOWER_UNAUTHENTICATED_API": "true",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [str(Path(sys.executable).parent / "celery"), "-A", "bench.baseline", "flower",
               "--address=127.0.0.1", f"--port={port}", "--logging=warning"]
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _answers(f"{base}/healthcheck"), timeout=60,
                   what="Flower to answer")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def described_task(base: str, app: Celery) -> str:
    """The id of a task that ran and that Flower describes (a worker with events must run).

    Flower hears events only once it has subscribed, some time after it first answers:
    tasks are sent until one of them is described."""
    sent: list[str] = []

    def described() -> str | None:
        sent.append(app.tasks[baseline.TASK].apply_async().id)
        return next((task for task in sent if _answers(f"{base}/api/task/info/{task}")), None)

    task_id: str = eventually(described, timeout=60, what="Flower to describe a task")
    return task_id
