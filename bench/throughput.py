"""Throughput: submitting jobs (one per call, and 1,000 per call), running no-op jobs end to
end, and CPU-bound jobs on one worker process against two.

Every figure is set beside a bare Celery app on the same Redis (bench/baseline.py) measured
in the same run, runs alternating between the two so that a busy moment of the machine hits
both. Submission is measured with no worker consuming, on either side.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
import requests
from celery import Celery

from bench import baseline, environment
from bench.flower import flower
from bench.load import Load, hammer
from bench.report import Row, median_row
from core.connection import redis_client
from tests.stack import Stack, eventually

CLIENTS = 32  # concurrent keep-alive HTTP clients
BATCH = 1000  # jobs per :batchRun call
POLL = 0.005  # seconds between "all done yet?" checks
E2E_NODE = {"e2e": 2}  # one worker node, prefork concurrency 2 (the baseline's too)
PRIMES_BELOW = 300_000  # one demo.primes job: about 0.3 s of CPU here


def _project() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


def _batch_body(count: int, job_input: dict[str, Any]) -> bytes:
    return json.dumps({"requests": [{"input": job_input}] * count}).encode()


@contextmanager
def yardstick(stack: Stack, *, results: bool = False, worker: int = 0,
              events: bool = False) -> Iterator[tuple[Celery, str]]:
    """The baseline Celery app (and its worker of `worker` processes, if any), then cleanup.

    It uses the stack's broker, and the stack's Redis for its results."""
    prefix = f"{stack.prefix}:baseline-{uuid.uuid4().hex[:6]}"
    broker, backend = stack.settings.effective_broker_url, stack.redis_url if results else ""
    app = baseline.baseline_app(broker, prefix, results=backend)
    process: subprocess.Popen[bytes] | None = None
    if worker:
        process = baseline.start_worker(broker, prefix, worker,
                                        stack.workdir / "baseline-worker.log", results=backend,
                                        events=events)
        eventually(lambda: app.control.ping(timeout=0.5), timeout=60,
                   what="the baseline worker to answer")
    try:
        yield app, prefix
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        client = redis_client(stack.redis_url)
        for key in client.scan_iter(match=f"{prefix}:*", count=5000):
            client.unlink(key)
        client.close()


def _apply_async_rate(app: Celery, prefix: str, seconds: float) -> float:
    """Tasks a second one process sends with `apply_async` (nobody consumes them)."""
    task = app.tasks[baseline.TASK]
    task.apply_async()  # connect and declare outside the timing
    sent, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        task.apply_async()
        sent += 1
    rate = sent / (time.perf_counter() - start)
    _purge(app, prefix)
    return rate


def _purge(app: Celery, prefix: str) -> None:
    """Drop every message waiting in the baseline's queue (nothing consumes it)."""
    with app.connection_for_write() as connection:
        app.amqp.queues[prefix].bind(connection.default_channel).purge()


def submit_single(stack: Stack, quick: bool = False) -> list[Row]:
    """:run over HTTP from 32 keep-alive clients vs `apply_async` in a loop in one process,
    and vs Flower's async-apply from the same clients."""
    runs, seconds = (2, 1.0) if quick else (5, 3.0)
    environment.use_workers(stack, {})
    ours: list[float] = []
    theirs: list[float] = []
    flowers: list[Load] = []
    errors = 0
    generator = ""
    with yardstick(stack) as (app, prefix), \
            flower(stack.settings.effective_broker_url, prefix,
                   stack.workdir / "flower.log") as flower_base:
        for _ in range(runs):
            theirs.append(_apply_async_rate(app, prefix, seconds))
            flowers.append(hammer(f"{flower_base}/api/task/async-apply/{baseline.TASK}",
                                  connections=CLIENTS, seconds=seconds, method="POST",
                                  body={}))
            _purge(app, prefix)
            project = _project()
            load = hammer(f"{stack.base_url}/v1/projects/{project}/jobs/bench.noop:run",
                          connections=CLIENTS, seconds=seconds, method="POST",
                          body={"input": {}})
            ours.append(load.rate)
            errors += load.errors
            generator = load.generator
            environment.purge_queue(stack)
            environment.forget_project(stack, project)
    figure = "submit over HTTP, 1 job per call, 32 keep-alive clients (jobs/s)"
    return [
        median_row(figure, ours, unit="/s", baseline=theirs, target_ratio=0.8,
                   higher_is_better=True,
                   note=f"{runs} runs of {seconds:g} s each side, alternating; load from "
                        f"{generator} ({errors} errors); baseline: `apply_async` of a no-op "
                        "task in a loop from one process, same Redis, JSON serializer, "
                        "nothing consuming either queue"),
        median_row(f"{figure} vs Flower", ours, unit="/s",
                   baseline=[load.rate for load in flowers], target_ratio=2.0,
                   higher_is_better=True,
                   note="the same runs of ours; baseline: Flower's `POST /api/task/"
                        "async-apply/bench.noop` from the same 32 clients, alternating, on "
                        "the same Redis (Celery app of the baseline above, no result "
                        f"backend; {sum(load.errors for load in flowers)} errors)"),
    ]


def submit_batch(stack: Stack, quick: bool = False) -> list[Row]:
    """:batchRun with 1,000 jobs a call, one client, vs `apply_async` in a loop."""
    runs, calls = (2, 2) if quick else (5, 5)
    environment.use_workers(stack, {})
    body = _batch_body(BATCH, {})
    ours: list[float] = []
    theirs: list[float] = []
    latencies: list[float] = []
    with yardstick(stack) as (app, prefix), requests.Session() as http:
        for _ in range(runs):
            theirs.append(_apply_async_rate(app, prefix, 1.0 if quick else 3.0))
            project = _project()
            url = f"{stack.base_url}/v1/projects/{project}/jobs/bench.noop:batchRun"
            _post(http, url, body)  # warm the connection and the route
            start = time.perf_counter()
            for _ in range(calls):
                sent = time.perf_counter()
                _post(http, url, body)
                latencies.append(time.perf_counter() - sent)
            ours.append(calls * BATCH / (time.perf_counter() - start))
            environment.purge_queue(stack)
            environment.forget_project(stack, project)
    return [median_row(
        "batch submit, 1,000 jobs per call (jobs/s)", ours, unit="/s", baseline=theirs,
        target_ratio=5.0, higher_is_better=True,
        note=f"{runs} runs of {calls} sequential calls from one keep-alive client; median "
             f"call {statistics.median(latencies) * 1000:.0f} ms; baseline as above")]


def _post(http: requests.Session, url: str, body: bytes) -> dict[str, Any]:
    answer = http.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
    if answer.status_code != 200:
        raise RuntimeError(f"POST {url}: HTTP {answer.status_code} {answer.text[:500]}")
    parsed: dict[str, Any] = answer.json()
    return parsed


def run_noops(stack: Stack, http: requests.Session, project: str, count: int, *,
              job: str = "bench.noop", job_input: dict[str, Any] | None = None) -> float:
    """Seconds from submitting `count` jobs (by :batchRun) to all of them done."""
    client = redis_client(stack.redis_url)
    queued = stack.store().keys.queued(project)
    url = f"{stack.base_url}/v1/projects/{project}/jobs/{job}:batchRun"
    start = time.perf_counter()
    try:
        for offset in range(0, count, BATCH):
            _post(http, url, _batch_body(min(BATCH, count - offset), job_input or {}))
        _until(lambda: not client.hget(queued, project), count, f"{project}'s jobs")
    finally:
        client.close()
    return time.perf_counter() - start


def run_baseline(app: Celery, prefix: str, count: int) -> float:
    """Seconds from `apply_async` of `count` no-op tasks to all their results stored."""
    client = redis_client(app.conf.result_backend)
    task = app.tasks[baseline.TASK]
    start = time.perf_counter()
    ids = [task.apply_async().id for _ in range(count)]
    keys = [baseline.result_key(prefix, task_id) for task_id in ids]
    try:
        _until(lambda: _all_exist(client, keys), count, "the baseline's results")
    finally:
        client.close()
    return time.perf_counter() - start


def _all_exist(client: redis.Redis, keys: list[str]) -> bool:
    return all(client.exists(*keys[at:at + 1000]) == len(keys[at:at + 1000])
               for at in range(0, len(keys), 1000))


def _until(done: Callable[[], bool], count: int, what: str) -> None:
    deadline = time.perf_counter() + 60 + count / 50  # far beyond any plausible rate
    while not done():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(POLL)


def end_to_end(stack: Stack, quick: bool = False) -> list[Row]:
    """No-op jobs, submit → all done, on one worker node of 2 processes, vs raw Celery."""
    runs, count = (2, 300) if quick else (3, 3000)
    environment.use_workers(stack, E2E_NODE)
    ours: list[float] = []
    theirs: list[float] = []
    with yardstick(stack, results=True, worker=2) as (app, prefix), \
            requests.Session() as http:
        run_noops(stack, http, _project(), 50)  # warm both up outside the timing
        run_baseline(app, prefix, 50)
        for _ in range(runs):
            theirs.append(count / run_baseline(app, prefix, count))
            project = _project()
            ours.append(count / run_noops(stack, http, project, count))
            environment.forget_project(stack, project)
    return [median_row(
        "end to end, no-op jobs, submit → all done, 1 worker x 2 processes (jobs/s)", ours,
        unit="/s", baseline=theirs, target_ratio=1.0, higher_is_better=True,
        note=f"{runs} runs of {count} jobs each side, alternating; ours submitted by "
             ":batchRun, done when the project has nothing left not done; baseline: "
             "`apply_async` in a loop, Redis result backend, worker with the same prefork "
             "concurrency 2, prefetch multiplier 1 and late acks, done when every "
             "result key exists")]


def cpu_scaling(stack: Stack, quick: bool = False) -> list[Row]:
    """demo.primes jobs on a worker of 2 processes against a worker of 1."""
    runs, jobs = (1, 4) if quick else (3, 16)
    rates: dict[int, list[float]] = {1: [], 2: []}
    with requests.Session() as http:
        for processes in (1, 2):
            environment.use_workers(stack, {f"cpu{processes}": processes})
            for _ in range(runs):
                project = _project()
                seconds = run_noops(stack, http, project, jobs, job="demo.primes",
                                    job_input={"below": PRIMES_BELOW, "chunks": 4})
                rates[processes].append(jobs / seconds)
                environment.forget_project(stack, project)
    environment.use_workers(stack, {})
    return [median_row(
        "CPU-bound jobs, 1 worker x 2 processes (jobs/s)", rates[2], unit="/s",
        baseline=rates[1], target_ratio=1.8, higher_is_better=True,
        note=f"{jobs} `demo.primes` jobs (below={PRIMES_BELOW:,}) per run, {runs} run(s) "
             "each; baseline: the same worker with 1 process")]
