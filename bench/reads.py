"""GetOperation under load from 32 concurrent keep-alive clients, beside three yardsticks
measured in the same run, alternating:

- a bare WSGI callable doing one `HGETALL` of the same hash, on the same server with the
  same settings (bench/bare_wsgi.py): the cost of one Redis read per request;
- Flower's `GET /api/task/info/{id}` on the same Redis and Celery (bench/flower.py);
- GetOperation itself while 1,000 `:wait` calls are parked on the API (bench/parked.py).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from bench import environment
from bench.bare_wsgi import ENV_KEY
from bench.flower import described_task, flower
from bench.load import Load, hammer
from bench.parked import parked_waits
from bench.report import Row, median_row
from bench.throughput import yardstick
from core import record
from core.embedded_redis import free_port
from core.names import new_operation_id
from core.states import Event
from core.timestamps import now_micros
from tests.stack import ROOT, Stack
from tests.waiting import eventually

CLIENTS = 32
PARKED = 1000
_SERVE = ("import sys; from core.config import Settings; from web.server import server; "
          "server(Settings.from_env(), sys.argv[1]).serve()")


def get_operation(stack: Stack, quick: bool = False) -> list[Row]:
    """Requests a second and p99 latency of GetOperation on a done operation vs its
    yardsticks."""
    runs, seconds = (2, 1.0) if quick else (5, 3.0)
    environment.use_workers(stack, {})
    project = f"bench-{uuid.uuid4().hex[:12]}"
    name = done_operation(stack, project)
    url = f"{stack.base_url}/v1/{name}"
    gets: list[Load] = []
    bares: list[Load] = []
    infos: list[Load] = []
    parked: list[Load] = []
    store = stack.store()
    with bare_server(stack, store.keys.operation(project, name.rsplit("/", 1)[1])) as bare, \
            yardstick(stack, worker=1, events=True) as (app, prefix), \
            flower(stack.settings.effective_broker_url, prefix,
                   stack.workdir / "flower.log") as flower_base:
        info = f"{flower_base}/api/task/info/{described_task(flower_base, app)}"
        for _ in range(runs):
            bares.append(hammer(bare, connections=CLIENTS, seconds=seconds))
            gets.append(hammer(url, connections=CLIENTS, seconds=seconds))
            infos.append(hammer(info, connections=CLIENTS, seconds=seconds))
            with parked_waits(stack.base_url, store, project, PARKED) as count:
                if count < PARKED:
                    raise RuntimeError(f"only {count} of {PARKED} :wait calls were parked")
                parked.append(hammer(url, connections=CLIENTS, seconds=seconds))
    store.redis.close()
    environment.forget_project(stack, project)
    generator = gets[0].generator
    errors = sum(load.errors for load in gets + bares + infos + parked)
    figure = "GetOperation, 32 keep-alive clients (requests/s)"
    return [
        median_row(figure, _rates(gets), unit="/s", baseline=_rates(bares), target_ratio=0.8,
                   higher_is_better=True,
                   note=f"{runs} runs of {seconds:g} s each, alternating with the "
                        "baselines; a SUCCEEDED operation with a small response; load from "
                        f"{generator} ({errors} errors in all rows); baseline: a bare WSGI "
                        "callable answering that operation's hash from one `HGETALL`, on "
                        "the same server (Granian, same processes and threads)"),
        median_row("GetOperation p99 latency, 32 clients", [load.p99 for load in gets],
                   baseline=[load.p99 for load in bares]),
        median_row(f"{figure} vs Flower", _rates(gets), unit="/s", baseline=_rates(infos),
                   target_ratio=2.0, higher_is_better=True,
                   note="the same runs of ours; baseline: Flower's `GET /api/task/info/{id}` "
                        "of a task that ran on a worker sending events, same clients, same "
                        "Redis"),
        median_row(f"{figure}, {PARKED:,} :wait calls parked", _rates(parked), unit="/s",
                   baseline=_rates(gets), target_ratio=0.8, higher_is_better=True,
                   note=f"{PARKED:,} `:wait` calls parked on one PENDING operation (each on a "
                        "socket of its own) during each run, then released by cancelling "
                        "it; baseline: the same GetOperation with none parked"),
    ]


def _rates(loads: list[Load]) -> list[float]:
    return [load.rate for load in loads]


def _serving(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:  # not listening yet
        return False


@contextmanager
def bare_server(stack: Stack, key: str) -> Iterator[str]:
    """bench/bare_wsgi.py on the API's server and settings, answering hash `key`: its URL."""
    port = free_port()
    env = {**stack.env, "PORT": str(port), ENV_KEY: key}
    with (stack.workdir / "bare-wsgi.log").open("ab") as log:
        process = subprocess.Popen([sys.executable, "-c", _SERVE, "bench.bare_wsgi:create_app"],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        eventually(lambda: _serving(url), timeout=60, what="the bare WSGI server")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def done_operation(stack: Stack, project: str) -> str:
    """A SUCCEEDED operation, written through the same store calls a worker makes."""
    store = stack.store()
    operation, _ = store.create(project, new_operation_id(), "bench.noop")
    store.apply(project, operation.id, Event.START,
                {record.START_TIME: now_micros(), record.WORKER: "bench@host"},
                increment=(record.ATTEMPT,), take_lease=10)
    store.apply(project, operation.id, Event.SUCCEED,
                {record.RESPONSE: record.encode_json({"ok": True}), record.PROGRESS_PERCENT: 100})
    store.redis.close()
    return operation.name
