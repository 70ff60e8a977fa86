"""Redis commands, round trips and bytes per job step, ours beside raw Celery, same run.

    .venv/bin/python bench/commands.py [--quick]     (`make bench` runs it as `commands`)

On the bench stack's private Redis, jobs go through one at a time from one client: ours are
`bench.step` jobs (one progress report) submitted with `:run` and run by one worker node of
one process, then read back with GetOperation and ListOperations; Celery's are no-op tasks
sent with `apply_async` to a worker of one process that stores each result in the same
Redis (bench/baseline.py). Each phase is watched twice over (bench/redis_probe.py):

- `INFO` before and after: commands run (`total_commands_processed`, which counts those a
  Lua script runs too), read events (`total_reads_processed`: one per client round trip,
  a pipeline included), network bytes each way, and memory (`used_memory` less the client
  buffers), the watching's own share subtracted;
- `MONITOR`: every command with its client, so that each is put down to a step by the
  process that sent it (API, worker, this process) and what it is (the transition script's
  event, the message take, the acknowledgement, the result write); a command a script ran
  goes with its script. Round trips per step: a client's commands sent back to back (under
  15 µs apart, as a pipeline arrives) count as one.

Worker-side background (idle polling, the supervisor's ticks) is measured for a few seconds
before the jobs run and subtracted at its rate. A second pass, without MONITOR (which would
inflate them), times the CPU of Redis's command thread (`INFO cpu`) and of the API's and the
workers' processes (psutil) per step; a last phase announces changes nobody waits for to the
API processes' change listeners: the cost of pub/sub fan-out per announcement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench import baseline, environment
from bench.redis_usage import Phase, Watch
from bench.report import Row
from bench.steps import Usage
from bench.throughput import yardstick
from tests.stack import Stack

JOB = "bench.step"
NODE = {"steps": 1}  # one worker node of one process: jobs run one at a time
IDLE_SECONDS = 3.0


@dataclass
class Measured:
    """One side's figures: per step (per job; per call for the reads) and per job in all."""

    steps: dict[str, Usage]
    job: Usage  # INFO's, submit to done
    worker: Usage  # INFO's, submit to done less the submission


def _alone(phase: Phase, step: str, count: int) -> Usage:
    """A step measured in a phase of its own: MONITOR's counts, INFO's round trips (read
    events: exact), bytes from Redis, memory growth and CPU."""
    seen, info = phase.steps.get(step, Usage()), phase.totals
    return replace(info, commands=seen.commands, client_commands=seen.client_commands,
                   bytes_in=seen.bytes_in).per(count)


def _timed(seen: Usage, timed: Usage) -> Usage:
    """`seen` (a watched pass) with the CPU times of `timed` (a pass not slowed by MONITOR)."""
    return replace(seen, redis_cpu=timed.redis_cpu, api_cpu=timed.api_cpu,
                   worker_cpu=timed.worker_cpu)


def merged(seen: Measured, timed: Measured) -> Measured:
    """The figures of a watched pass with the CPU times of a pass not watched by MONITOR."""
    steps = {name: _timed(usage, timed.steps.get(name, usage))
             for name, usage in seen.steps.items()}
    return Measured(steps, _timed(seen.job, timed.job), _timed(seen.worker, timed.worker))


def _measured(done: Phase, submit: Phase, count: int, **alone: Usage) -> Measured:
    steps = {name: usage.per(count) for name, usage in done.steps.items()}
    steps.update(submit=_alone(submit, "submit", count), **alone)
    return Measured(steps, done.totals.per(count),
                    done.totals.combine(submit.totals, -1).per(count))


def _call(http: requests.Session, url: str, body: object | None = None) -> dict[str, object]:
    answer = http.post(url, json=body, timeout=30) if body is not None else \
        http.get(url, timeout=30)
    if answer.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {answer.status_code} {answer.text[:300]}")
    parsed: dict[str, object] = answer.json()
    return parsed


def measure_ours(stack: Stack, watch: Watch, count: int, pages: int) -> Measured:
    """Submit alone, then submit to done, then the reads, for `count` jobs."""
    keys = stack.store().keys
    unacked = f"{keys.broker_prefix()}unacked"
    with requests.Session() as http:
        environment.use_workers(stack, {})
        project = f"bench-{uuid.uuid4().hex[:12]}"
        run = f"{stack.base_url}/v1/projects/{project}/jobs/{JOB}:run"
        _call(http, run, {"input": {}})  # warm the route and the connection
        idle = watch.idle(IDLE_SECONDS)
        submit = watch.phase(lambda: [_call(http, run, {"input": {}}) for _ in range(count)],
                             "submit").net_of(idle)
        environment.purge_queue(stack)
        environment.forget_project(stack, project)

        environment.use_workers(stack, NODE)
        project = f"bench-{uuid.uuid4().hex[:12]}"
        run = f"{stack.base_url}/v1/projects/{project}/jobs/{JOB}:run"
        _call(http, run, {"input": {}})
        environment.queue_drained(stack)
        names: list[str] = []

        def jobs() -> None:
            names.extend(str(_call(http, run, {"input": {}})["name"]) for _ in range(count))
            watch.until(lambda probe: probe.call("HGET", keys.queued(project), project) is None
                        and probe.call("HLEN", unacked) == 0, "the jobs to finish")

        idle = watch.idle(IDLE_SECONDS)
        done = watch.phase(jobs, "submit").net_of(idle)
        base = f"{stack.base_url}/v1/"
        get = watch.phase(lambda: [_call(http, base + name) for name in names],
                          "get").net_of(idle)
        listing = f"{stack.base_url}/v1/projects/{project}/operations?pageSize=50"
        page = watch.phase(lambda: [_call(http, listing) for _ in range(pages)],
                           "list").net_of(idle)
        environment.forget_project(stack, project)
    environment.use_workers(stack, {})
    return _measured(done, submit, count, get=_alone(get, "get", count),
                     list=_alone(page, "list", pages))


def measure_celery(stack: Stack, watch: Watch, count: int) -> Measured:
    """`apply_async` alone, then `apply_async` to the result stored, for `count` tasks."""
    with yardstick(stack) as (app, prefix):
        task = app.tasks[baseline.TASK]
        task.apply_async()  # connect and declare outside the measurement
        idle = watch.idle(IDLE_SECONDS)
        submit = watch.phase(lambda: [task.apply_async() for _ in range(count)],
                             "submit").net_of(idle)
        with app.connection_for_write() as connection:
            app.amqp.queues[prefix].bind(connection.default_channel).purge()
    with yardstick(stack, results=True, worker=1) as (app, prefix):
        task = app.tasks[baseline.TASK]
        task.apply_async()
        ids: list[str] = []

        def tasks() -> None:
            ids.extend(task.apply_async().id for _ in range(count))
            results = [baseline.result_key(prefix, task_id) for task_id in ids]
            watch.until(lambda probe: probe.call("EXISTS", *results) == len(results)
                        and probe.call("HLEN", f"{prefix}:unacked") == 0,
                        "the baseline's results")

        time.sleep(1)  # the warm-up task is acknowledged
        idle = watch.idle(IDLE_SECONDS)
        done = watch.phase(tasks, "submit").net_of(idle)
    return _measured(done, submit, count)


STEP_LABELS = {"submit": "submit", "start": "start (take the message, → RUNNING)",
               "progress": "one progress report", "finish": "finish (→ done, acknowledge)",
               "other": "other worker calls (net of idle)", "get": "GetOperation",
               "list": "ListOperations page of 50"}
ALONE = frozenset({"submit", "get", "list"})  # steps measured in a phase of their own
COLUMNS = ("commands (incl. in scripts)", "client commands", "round trips", "bytes to Redis",
           "bytes from Redis", "memory growth")


def _cells(usage: Usage, *, info: bool, memory: bool) -> list[str]:
    return [f"{usage.commands:.1f}", f"{usage.client_commands:.1f}",
            f"{usage.round_trips:.1f}", f"{usage.bytes_in:,.0f}",
            f"{usage.bytes_out:,.0f}" if info else "", f"{usage.memory:,.0f}" if memory else ""]


def step_table(ours: Measured, celery: Measured) -> str:
    """Per step, both sides: Markdown. Bytes from Redis are INFO's, so shown only for steps
    measured alone and for the worker side as a whole; memory only where a job adds data."""
    lines = [["side", "step", *COLUMNS]]
    for side, measured, order in (("opqueue", ours, list(STEP_LABELS)),
                                  ("Celery", celery, ["submit", "start", "finish", "other"])):
        for step in order:
            label = "apply_async" if side == "Celery" and step == "submit" else STEP_LABELS[step]
            lines.append([side, label, *_cells(measured.steps.get(step, Usage()),
                                               info=step in ALONE, memory=step == "submit")])
        for label, usage in (("worker side in all (INFO)", measured.worker),
                             ("**submit to done (INFO)**", measured.job)):
            lines.append([side, label, *_cells(usage, info=True, memory=True)])
    return _markdown(lines)


@dataclass(frozen=True)
class FanOut:
    """What one change announcement costs where API processes listen to its project."""

    listeners: int  # subscribers of the project's changes channel
    redis_cpu: float  # seconds per announcement, Redis's command thread
    api_cpu: float  # seconds per announcement delivered, per listening API process


def fan_out(stack: Stack, watch: Watch, count: int) -> FanOut:
    """Announce `count` changes of an operation nobody waits for, as the scripts do, in a
    project whose changes every API process listens to (each served a `:wait` in it)."""
    project = f"bench-{uuid.uuid4().hex[:12]}"
    with requests.Session() as http:
        created = str(_call(http, f"{stack.base_url}/v1/projects/{project}/jobs/{JOB}:run",
                            {"input": {}})["name"])
        for _ in range(4 * stack.settings.web_processes):  # reach every process, likely
            http.close()  # a new connection: maybe another gunicorn process
            _call(http, f"{stack.base_url}/v1/{created}:wait", {"timeout": "0.01s"})
    environment.purge_queue(stack)
    environment.forget_project(stack, project)
    channel = stack.store().keys.changes(project)
    change = json.dumps({"name": f"projects/{project}/operations/{uuid.uuid4()}",
                         "project": project, "event": "progress", "state": "RUNNING"})
    [_, listeners] = watch.probe.call("PUBSUB", "NUMSUB", channel)
    idle = watch.idle(IDLE_SECONDS)
    sent = watch.phase(lambda: [watch.probe.call("PUBLISH", channel, change)
                                for _ in range(count)], "other").net_of(idle)
    per = sent.totals.per(count)
    # Redis's CPU includes reading and answering the probe's PUBLISH, as for a script's.
    return FanOut(int(listeners), per.redis_cpu, per.api_cpu / max(1, int(listeners)))


def cpu_table(ours: Measured, celery: Measured, fan: FanOut) -> str:
    """CPU per step, both sides, from the pass without MONITOR, and per change announced:
    Markdown."""
    lines = [["side", "step", "Redis command thread (µs)", "API processes (µs)",
              "worker processes (µs)"]]
    for side, measured in (("opqueue", ours), ("Celery", celery)):
        shown = [(step, measured.steps[step]) for step in ("submit", "get", "list")
                 if step in measured.steps]
        for step, usage in [*shown, ("worker side in all", measured.worker),
                            ("submit to done", measured.job)]:
            label = "apply_async" if side == "Celery" and step == "submit" else \
                STEP_LABELS.get(step, step)
            lines.append([side, label, f"{usage.redis_cpu * 1e6:,.0f}",
                          f"{usage.api_cpu * 1e6:,.0f}" if side == "opqueue" else "",
                          f"{usage.worker_cpu * 1e6:,.0f}"])
    lines.append(["opqueue", f"one change announced, {fan.listeners} listening API processes",
                  f"{fan.redis_cpu * 1e6:,.1f}", f"{fan.api_cpu * 1e6:,.1f} each", ""])
    return _markdown(lines)


def _markdown(lines: list[list[str]]) -> str:
    width = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    rendered = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(line, width, strict=True))
                + " |" for line in lines]
    rule = "|" + "|".join("-" * (w + 2) for w in width) + "|"
    return "\n".join([rendered[0], rule, *rendered[1:]])


def redis_commands(stack: Stack, quick: bool = False, table: TextIO = sys.stderr) -> list[Row]:
    """Commands, round trips and bytes per job, submit to done, ours vs Celery; the per-step
    tables go to `table`. Two passes: one watched by MONITOR (what each step runs), one not
    (CPU times, which MONITOR would inflate)."""
    count, pages = (20, 5) if quick else (200, 50)
    passes: list[tuple[Measured, Measured]] = []
    for monitor in (True, False):
        watch = Watch(stack, monitor=monitor)
        try:
            passes.append((measure_ours(stack, watch, count, pages),
                           measure_celery(stack, watch, count)))
        finally:
            watch.close()
    watch = Watch(stack, monitor=False)
    try:
        fan = fan_out(stack, watch, 50 * count)
    finally:
        watch.close()
    ours, celery = (merged(seen, timed) for seen, timed in zip(*passes, strict=True))
    print(step_table(ours, celery), file=table)
    print(file=table)
    print(cpu_table(ours, celery, fan), file=table)
    note = (f"{count} jobs one at a time, one worker process; INFO deltas (commands run by "
            "scripts counted; round trips = read events), the watching and idle background "
            "subtracted; opqueue: `bench.step` (one progress report) by `:run`; Celery: "
            "no-op `apply_async`, result in Redis; per-step tables: bench/commands.py")
    return [
        Row("Redis commands per job, submit to done (incl. inside scripts)",
            ours.job.commands, count, unit="", baseline=celery.job.commands,
            target_ratio=1.0, note=note),
        Row("Redis commands clients send per job, submit to done (a script counts once)",
            ours.job.client_commands, count, unit="", baseline=celery.job.client_commands),
        Row("Redis round trips per job, submit to done", ours.job.round_trips, count,
            unit="", baseline=celery.job.round_trips),
        Row("Redis network bytes per job, submit to done (in + out)",
            ours.job.bytes_in + ours.job.bytes_out, count, unit="B",
            baseline=celery.job.bytes_in + celery.job.bytes_out),
        Row("Redis CPU per job, submit to done (µs of its command thread)",
            ours.job.redis_cpu * 1e6, count, unit="", baseline=celery.job.redis_cpu * 1e6),
    ]


def main(argv: list[str] | None = None) -> int:
    """Start a private deployment, measure, print the per-step table and the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 jobs: a smoke run")
    args = parser.parse_args(argv)
    from bench.report import markdown_table
    from bench.run import STACK_ENV, check_local_redis, running_stack

    check_local_redis()
    workdir = Path(tempfile.mkdtemp(prefix="opqueue-commands-"))
    with running_stack(workdir, (), **STACK_ENV) as stack:
        rows = redis_commands(stack, args.quick, table=sys.stdout)
    shutil.rmtree(workdir)
    print()
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
