"""GetOperation and RunJob over gRPC, each beside the same call over HTTP in the same run.

The gRPC load comes from Python (`grpc.aio`, two processes sharing 32 concurrent calls, the
requests pre-serialized), the HTTP load from `wrk` where installed (bench/load.py): the
gRPC client costs far more CPU per call than wrk on the same two cores, so the gRPC figures
are a floor. Runs alternate between the transports so a busy moment hits both.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import grpc
from google.longrunning import operations_pb2

from bench import environment
from bench.load import Load, hammer
from bench.reads import done_operation
from bench.report import Row, median_row, percentile
from opqueue.v1 import jobs_pb2
from tests.stack import Stack

CLIENTS = 32
PROCESSES = 2
GET_OPERATION = "/google.longrunning.Operations/GetOperation"
RUN_JOB = "/opqueue.v1.Jobs/RunJob"


def grpc_calls(stack: Stack, quick: bool = False) -> list[Row]:
    """Calls a second and p99 latency of GetOperation and RunJob, gRPC beside HTTP."""
    runs, seconds = (2, 1.0) if quick else (5, 3.0)
    environment.use_workers(stack, {})  # RunJob only queues: nobody consumes
    project = f"bench-{uuid.uuid4().hex[:12]}"
    name = done_operation(stack, project)
    get = operations_pb2.GetOperationRequest(name=name).SerializeToString()
    run = jobs_pb2.RunJobRequest(parent=f"projects/{project}", job="bench.noop")
    loads: dict[str, list[Load]] = {key: [] for key in ("get", "get-http", "run", "run-http")}
    for _ in range(runs):
        loads["get-http"].append(hammer(f"{stack.base_url}/v1/{name}", connections=CLIENTS,
                                        seconds=seconds))
        loads["get"].append(call_load(stack.grpc_target, GET_OPERATION, get, seconds))
        loads["run-http"].append(hammer(
            f"{stack.base_url}/v1/projects/{project}/jobs/bench.noop:run", method="POST",
            body={"input": {}}, connections=CLIENTS, seconds=seconds))
        loads["run"].append(call_load(stack.grpc_target, RUN_JOB, run.SerializeToString(),
                                      seconds))
    environment.purge_queue(stack)  # the RunJob messages: no later family may meet them
    environment.forget_project(stack, project)
    rows: list[Row] = []
    for key, call in (("get", "GetOperation"), ("run", "RunJob")):
        grpc_loads, http_loads = loads[key], loads[f"{key}-http"]
        errors = sum(load.errors for load in grpc_loads + http_loads)
        rows += [
            median_row(f"{call} over gRPC, {CLIENTS} concurrent calls (calls/s)",
                       [load.rate for load in grpc_loads], unit="/s",
                       baseline=[load.rate for load in http_loads], higher_is_better=True,
                       note=f"{runs} runs of {seconds:g} s each, alternating with the same "
                            f"call over HTTP (the baseline column, {CLIENTS} keep-alive "
                            f"clients, load from {http_loads[0].generator}); gRPC load from "
                            f"Python grpc.aio, which costs more CPU per call ({errors} "
                            "errors)"),
            median_row(f"{call} over gRPC p99 latency, {CLIENTS} calls",
                       [load.p99 for load in grpc_loads],
                       baseline=[load.p99 for load in http_loads]),
        ]
    return rows


def call_load(target: str, method: str, request: bytes, seconds: float) -> Load:
    """`CLIENTS` concurrent calls of `method` with `request`, from fresh processes."""
    shares = [CLIENTS // PROCESSES + (i < CLIENTS % PROCESSES) for i in range(PROCESSES)]
    # spawn, not fork: the parent's gRPC runtime must not be copied into the children.
    with ProcessPoolExecutor(PROCESSES, mp_context=get_context("spawn")) as pool:
        start = time.perf_counter()
        parts = list(pool.map(_share, [target] * PROCESSES, [method] * PROCESSES,
                              [request] * PROCESSES, shares, [seconds] * PROCESSES))
        elapsed = time.perf_counter() - start
    latencies = [latency for share, _ in parts for latency in share]
    if not latencies:
        raise RuntimeError(f"no answer from {target}{method}")
    return Load(len(latencies), min(elapsed, seconds), percentile(latencies, 50),
                percentile(latencies, 99), sum(failed for _, failed in parts), "grpc.aio")


def _share(target: str, method: str, request: bytes, clients: int,
           seconds: float) -> tuple[list[float], int]:
    return asyncio.run(_calls(target, method, request, clients, seconds))


async def _calls(target: str, method: str, request: bytes, clients: int,
                 seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    failed = 0
    async with grpc.aio.insecure_channel(target) as channel:
        await channel.channel_ready()
        call = channel.unary_unary(method)  # bytes in, bytes out: no (de)serializing here
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal failed
            while (sent := time.perf_counter()) < deadline:
                try:
                    await call(request, timeout=10)
                except grpc.aio.AioRpcError:
                    failed += 1
                    continue
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, failed
