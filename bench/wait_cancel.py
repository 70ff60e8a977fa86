"""WaitOperation wake-up latency and the time from a cancel call to CANCELLED.

Every job here is a `test.gate` job (tests/jobs.py) on a project of the benchmark's own, so
the moment it finishes is chosen by opening its gate, never by sleeping.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NamedTuple

import requests

from bench.environment import use_workers, worker_concurrency
from bench.report import Row, median_row, percentile_rows
from core.connection import redis_client
from tests.stack import Api, Stack, eventually, open_gate

WAIT_TIMEOUT = 30.0  # seconds a :wait call asks for; every client call is bounded by it
POLL_INTERVAL = 0.1  # the naive client's GET period
PARK_SETTLE = 0.02  # after the wait's connection is up: ample to park a request (≈1 ms work)
NODES = {"w1": 2, "w2": 2}  # two worker nodes of 2 processes
RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")


def timestamp_seconds(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC timestamp with 0-9 fractional digits."""
    match = RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 UTC timestamp: {text!r}")
    whole, fraction = match.groups()
    moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    micros = int((fraction or "").ljust(6, "0")[:6])
    return moment.timestamp() + micros / 1_000_000


class GateJobs:
    """Submits `test.gate` jobs on a project of its own; at exit cancels and releases them all."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.api = Api(stack.base_url, f"bench-{uuid.uuid4().hex[:12]}")
        self.gates: dict[str, str] = {}  # operation name → its gate

    def submit(self, *, cooperative: bool) -> tuple[str, str]:
        """A new gate job: (operation name, gate id)."""
        gate = uuid.uuid4().hex
        name: str = self.api.run("test.gate", {"gate": gate, "cooperative": cooperative})["name"]
        self.gates[name] = gate
        return name, gate

    def cancel(self, name: str) -> None:
        """CancelOperation."""
        answer = self.api.http.post(f"{self.api.base}/v1/{name}:cancel", json={}, timeout=10)
        if answer.status_code != 200:
            raise RuntimeError(f"cancel {name}: HTTP {answer.status_code} {answer.text}")

    def release(self, name: str) -> dict[str, Any]:
        """Open the job's gate and return the operation once it is done."""
        open_gate(self.stack, self.gates[name])
        return self.api.wait(name, f"{WAIT_TIMEOUT:g}s")

    def __enter__(self) -> GateJobs:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for name, gate in self.gates.items():
            if not self.api.get(name)["done"]:
                self.cancel(name)
            open_gate(self.stack, gate)  # a gate nobody reads is deleted with the prefix
        self.api.http.close()


class Timed(NamedTuple):
    """A client's final answer, when it started asking and when the answer arrived (epoch s)."""

    operation: dict[str, Any]
    sent_at: float
    received_at: float


def _waiting_client(base_url: str, name: str) -> Timed:
    # A fresh connection per call, so the API's connection count shows when it is sent.
    with requests.Session() as http:
        sent_at = time.time()
        answer = http.post(f"{base_url}/v1/{name}:wait", json={"timeout": f"{WAIT_TIMEOUT:g}s"},
                           timeout=WAIT_TIMEOUT + 10)
        received_at = time.time()
    answer.raise_for_status()
    return Timed(answer.json(), sent_at, received_at)


def _polling_client(base_url: str, name: str) -> Timed:
    with requests.Session() as http:
        sent_at = time.time()
        start = time.perf_counter()
        for tick in range(int(WAIT_TIMEOUT / POLL_INTERVAL)):
            answer = http.get(f"{base_url}/v1/{name}", timeout=10)
            received_at = time.time()
            answer.raise_for_status()
            if answer.json()["done"]:
                return Timed(answer.json(), sent_at, received_at)
            time.sleep(max(0.0, start + (tick + 1) * POLL_INTERVAL - time.perf_counter()))
    raise TimeoutError(f"{name} not done after polling for {WAIT_TIMEOUT:g}s")


def _expect(operation: dict[str, Any], state: str) -> dict[str, Any]:
    if operation["metadata"]["state"] != state:
        raise RuntimeError(f"{operation['name']} is {operation['metadata']['state']}, not {state}")
    return operation


def _after_end(jobs: GateJobs, pool: ThreadPoolExecutor, client: Callable[[str, str], Timed],
               ready: Callable[[int], None]) -> tuple[float, float]:
    """(receive - endTime, endTime - sent) for one gate job finished while `client` asks."""
    # Non-cooperative: it sits in one BLPOP, so no progress writes add noise while we measure.
    name, gate = jobs.submit(cooperative=False)
    jobs.api.state_becomes(name, "RUNNING")
    connections = jobs.stack.web_connections()
    future = pool.submit(client, jobs.stack.base_url, name)
    ready(connections)
    open_gate(jobs.stack, gate)
    timed = future.result(timeout=WAIT_TIMEOUT + 20)
    end = timestamp_seconds(_expect(timed.operation, "SUCCEEDED")["metadata"]["endTime"])
    return timed.received_at - end, end - timed.sent_at


def wakeup_latency(stack: Stack, quick: bool = False) -> list[Row]:
    """WaitOperation: time from the terminal write (`endTime`) to the waiting client's answer.

    Operations run one at a time so each figure is one wake-up, not a queue of them. A wait
    must be parked server-side before the gate opens, or we would time a plain read instead:
    each wait opens a fresh connection, we watch the API's established connections grow
    (the request is written right after the connect), then allow PARK_SETTLE for the server
    to read it and park (about a millisecond of work). The note reports how long before
    `endTime` the earliest-sent wait went out, so the margin is visible, not assumed.
    A naive client polling GET every 100 ms, gate opened at a random phase, is the baseline.
    """
    operations, polls = (20, 5) if quick else (200, 50)
    use_workers(stack, NODES)
    rng = random.Random(6)  # a fixed seed: the same phases every run

    def parked(before: int) -> None:
        eventually(lambda: stack.web_connections() > before, timeout=10,
                   what="the wait request to reach the API")
        time.sleep(PARK_SETTLE)

    def any_phase(_: int) -> None:
        time.sleep(rng.uniform(POLL_INTERVAL, 2 * POLL_INTERVAL))

    with GateJobs(stack) as jobs, ThreadPoolExecutor(max_workers=1) as pool:
        waited = [_after_end(jobs, pool, _waiting_client, parked) for _ in range(operations)]
        polled = [_after_end(jobs, pool, _polling_client, any_phase) for _ in range(polls)]
    lead = min(before_end for _, before_end in waited)
    note = (f"receive time - metadata.endTime, one operation at a time; every wait was sent "
            f"≥ {lead * 1000:.0f} ms before endTime. Baseline: a client polling GET every "
            f"{POLL_INTERVAL * 1000:.0f} ms ({len(polled)} operations).")
    return percentile_rows("WaitOperation wake-up after terminal write",
                           [latency for latency, _ in waited],
                           targets={"p50": 0.005, "p99": 0.050},
                           baseline=[latency for latency, _ in polled], note=note)


def _when_done(api: Api, name: str) -> dict[str, Any]:
    """The operation from the first GET that shows it done (a GET every 20 ms, up to 10 s)."""
    return eventually(lambda: _done_or_none(api.get(name)), timeout=10, what=f"{name} done")


def _done_or_none(operation: dict[str, Any]) -> dict[str, Any] | None:
    return operation if operation["done"] else None


def _cancel_queued(jobs: GateJobs, runs: int) -> tuple[list[float], list[float]]:
    """(cancel sent → a GET shows done, the cancel call alone) for jobs still in the queue."""
    # Cooperative fillers hold every worker slot; prefetch is 1, so the target stays queued.
    slots = sum(worker_concurrency(jobs.stack).values())
    if not slots:
        raise RuntimeError("no worker answered `inspect stats`")
    fillers = [jobs.submit(cooperative=True)[0] for _ in range(slots)]
    for name in fillers:
        jobs.api.state_becomes(name, "RUNNING")
    to_done: list[float] = []
    call: list[float] = []
    try:
        for _ in range(runs):
            name, _ = jobs.submit(cooperative=True)
            _expect(jobs.api.get(name), "PENDING")
            start = time.perf_counter()
            jobs.cancel(name)
            call.append(time.perf_counter() - start)
            operation = _when_done(jobs.api, name)
            to_done.append(time.perf_counter() - start)
            _expect(operation, "CANCELLED")
    finally:
        for name in fillers:  # the running benchmarks below need the slots back
            jobs.release(name)
    return to_done, call


def _cancel_running(jobs: GateJobs, *, cooperative: bool) -> float:
    """Seconds from sending :cancel to a :wait that returns the job CANCELLED."""
    name, _ = jobs.submit(cooperative=cooperative)
    jobs.api.state_becomes(name, "RUNNING")
    start = time.perf_counter()
    jobs.cancel(name)
    _expect(jobs.api.wait(name, f"{WAIT_TIMEOUT:g}s"), "CANCELLED")
    return time.perf_counter() - start


def cancel_latency(stack: Stack, quick: bool = False) -> list[Row]:
    """Time from the cancel call to CANCELLED: queued, cooperative and deaf running jobs."""
    runs = 5 if quick else 20
    use_workers(stack, NODES)
    with GateJobs(stack) as jobs:
        queued, call = _cancel_queued(jobs, runs)
        cooperative = [_cancel_running(jobs, cooperative=True) for _ in range(runs)]
        deaf = [_cancel_running(jobs, cooperative=False) for _ in range(runs)]
    settings = stack.settings
    client = redis_client(stack.redis_url)
    hz = int(client.info("server")["hz"])
    client.close()
    return [
        median_row("cancel → GET shows CANCELLED, queued job", queued,
                   note="every worker slot held by other jobs; includes one GET round trip"),
        median_row("cancel call alone, queued job", call),
        median_row("cancel → :wait returns CANCELLED, cooperative running job", cooperative,
                   note=f"the job re-checks after each 0.1 s BLPOP timeout; Redis expires "
                        f"those on its hz tick (hz={hz} here), so every 0.1-{0.1 + 1 / hz:g} s"),
        median_row("cancel → :wait returns CANCELLED, non-cooperative running job", deaf,
                   unit="s",
                   note=f"terminated by the worker supervisor; this stack runs with "
                        f"OPQUEUE_CANCEL_GRACE_SECONDS={settings.cancel_grace_seconds:g} and "
                        f"checks every {settings.supervise_interval_seconds:g} s, so expect "
                        f"≈ {settings.cancel_grace_seconds:g}-"
                        f"{settings.cancel_grace_seconds + settings.supervise_interval_seconds:g}"
                        f" s"),
    ]
