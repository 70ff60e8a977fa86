"""Soak test (issue #5): thousands of jobs while worker, node and API processes are SIGKILLed.

    .venv/bin/python bench/soak.py [--jobs 2000] [--seed N] [--kill-every 2.0] [--broker URL]

A private deployment on 127.0.0.1 (API, three worker nodes x 2 pool processes, 3 s leases)
runs a mix of `demo.sleep` and `demo.primes` jobs submitted by client threads, each with its
own `requestId` so resubmitting after a 503 or a dropped connection is safe. Every
`--kill-every` s (jittered) the chaos SIGKILLs a random pool process, or a whole node and
starts a fresh one, or (one time in ten) one of gunicorn's API processes, whatever request
it is serving (gunicorn starts another; clients resubmit). With `--broker amqp://...`
(RabbitMQ; give it a virtual host of its own) every eighth chaos event instead closes every
connection of that virtual host (`rabbitmqctl`), the workers' and the API's alike, and a
broker restart can be added with `--restart-broker` (`rabbitmqctl stop_app`/`start_app`:
it disturbs everything else on that RabbitMQ). Then every operation must be
done: none lost (404), none stuck, none with two terminal states (two published, an
outcome not matching its state, a change once done), no job run twice at once. Prints a
table; exits 1 on any of those. Not in `make test`.
Runs are seen without touching the jobs: the workers also load this module as a job module,
whose Celery task_prerun/task_postrun handlers record each run's pid and span in Redis.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import queue
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psutil
import redis
import requests
from celery import signals

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from core.codes import Code
from core.config import Settings
from core.connection import redis_client
from core.keyspace import Keys
from core.operation import Operation
from core.states import TERMINAL

if TYPE_CHECKING:
    from tests.stack import Stack

PROJECT, NODES, CONCURRENCY, CLIENTS, WAITERS = "soak", 3, 2, 4, 16
BACKLOG = 60  # accepted, not yet done: submission keeps pace, so the chaos hits running jobs
CHAOS_TAIL = 5.0  # seconds of chaos after the last submission
WEB_KILLS = 0.1  # the share of the chaos's kills that hit an API process
BROKER_DROPS = 8  # with RabbitMQ, every this many chaos events one drops its connections
STACK_ENV = {"OPQUEUE_LEASE_SECONDS": "3", "OPQUEUE_SUPERVISE_INTERVAL_SECONDS": "0.25",
             "OPQUEUE_MAX_REDELIVERIES": "10",
             "OPQUEUE_JOB_MODULES": "core.demo_jobs,tests.jobs,bench.soak"}
Seen = dict[str, dict[str, Any] | None]  # name → the operation as the API showed it; None: 404
_open_runs: dict[str, str] = {}  # in a pool process: task id → `pid:start` of its run


@cache
def _runs_redis(pid: int) -> redis.Redis:  # keyed by pid: a client of its own after the fork
    return redis_client(Settings.from_env().redis_url)


def runs_key(prefix: str, name: str) -> str:
    """Hash of an operation's runs, `pid:start` → end (empty: the run never finished)."""
    return f"{prefix}:soak-runs:{name.rsplit('/', 1)[-1]}"


def _run_starts(task_id: str, **_: Any) -> None:
    _open_runs[task_id] = run = f"{os.getpid()}:{time.time():.6f}"
    _runs_redis(os.getpid()).hset(runs_key(Settings.from_env().key_prefix, task_id), run, "")


def _run_ends(task_id: str, state: str, **_: Any) -> None:
    run, key = _open_runs.pop(task_id, ""), runs_key(Settings.from_env().key_prefix, task_id)
    if run and state == "IGNORED":  # a skipped delivery: the job did not run
        _runs_redis(os.getpid()).hdel(key, run)
    elif run:
        _runs_redis(os.getpid()).hset(key, run, f"{time.time():.6f}")


signals.task_prerun.connect(_run_starts)  # in every process that imports this module; they
signals.task_postrun.connect(_run_ends)  # fire only where tasks run, in the pool processes


def random_job(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A short job: mostly a stepped sleep of 0-0.3 s, else a small prime count."""
    if rng.random() < 0.7:
        return "demo.sleep", {"seconds": round(rng.uniform(0, 0.3), 2), "steps": rng.randint(1, 4)}
    return "demo.primes", {"below": rng.randint(1_000, 30_000), "chunks": rng.randint(1, 4)}


class Soak:
    """One soak run's threads and what they saw; every loop ends by `deadline` (monotonic)."""

    def __init__(self, stack: Stack, rng: random.Random, deadline: float, *, jobs: int,
                 restart_broker: bool = False) -> None:
        self.stack, self.rng, self.deadline, self.jobs = stack, rng, deadline, jobs
        self.restart_broker = restart_broker  # once, halfway through the submissions
        self.lock, self.stop, self.calm = threading.Lock(), threading.Event(), threading.Event()
        self.counts: Counter[str] = Counter()
        self.names: list[str] = []  # accepted operations
        self.terminal: Counter[str] = Counter()  # name → terminal changes published
        self.last_done = time.monotonic()
        self.killed_at: dict[int, float] = {}  # pid → when the chaos SIGKILLed it (epoch s)

    def left(self) -> float:
        """Seconds to the deadline."""
        return self.deadline - time.monotonic()

    def count(self, what: str, note: str = "") -> None:
        """Add one to a counter, from any thread; log `note` with the time."""
        with self.lock:
            self.counts[what] += 1
        if note:
            print(f"{datetime.now():%H:%M:%S.%f} {note}", file=sys.stderr)

    def submit(self, jobs: list[tuple[str, dict[str, Any]]]) -> None:
        """Submit `jobs`; after a 503 or a connection error, send the same body again."""
        http, base = requests.Session(), f"{self.stack.base_url}/v1/projects/{PROJECT}/jobs"
        for job, job_input in jobs:
            body = {"input": job_input, "requestId": str(uuid.uuid4())}
            held_back = time.monotonic() + 5  # pub/sub is the pace, not a precondition
            while len(self.names) - len(self.terminal) >= BACKLOG and \
                    time.monotonic() < min(held_back, self.deadline):
                time.sleep(0.02)
            answer = None
            while not self.stop.is_set() and self.left() > 0:
                try:
                    answer = http.post(f"{base}/{job}:run", json=body, timeout=10)
                    if answer.status_code != 503:
                        break
                except requests.RequestException:
                    pass
                self.count("client resubmits")
                time.sleep(0.2)
            if answer is not None and answer.status_code == 200:
                with self.lock:
                    self.names.append(answer.json()["name"])
            elif answer is not None:
                print(f"rejected {job} {job_input}: {answer.text}", file=sys.stderr)

    def listen(self, pubsub: Any) -> None:
        """Count the terminal changes the store publishes, per operation."""
        while not self.stop.is_set():
            message = pubsub.get_message(timeout=0.5)
            if message and message["type"] == "message" and \
                    (change := json.loads(message["data"]))["state"] in TERMINAL:
                with self.lock:
                    self.terminal[change["name"]] += 1
                    self.last_done = time.monotonic()

    def chaos(self, every: float) -> None:
        """Every `every` s (jittered) SIGKILL a random pool process, or a node and replace it,
        or now and then an API process (gunicorn starts another; clients resubmit)."""
        from tests.stack import drop_broker_connections, rabbitmqctl  # see `main`

        fresh = itertools.count(NODES + 1)
        rabbitmq = self.stack.settings.rabbitmq_broker
        for event in itertools.count(1):
            if self.calm.wait(every * self.rng.uniform(0.5, 1.5)):
                return
            if rabbitmq and self.restart_broker and len(self.names) * 2 >= self.jobs:
                self.restart_broker = False
                rabbitmqctl("stop_app")
                rabbitmqctl("start_app")
                self.count("broker restarts", "RabbitMQ restarted")
                continue
            if rabbitmq and event % BROKER_DROPS == 0:
                drop_broker_connections(self.stack.settings.effective_broker_url)
                self.count("broker connection drops", "dropped every broker connection")
                continue
            if self.rng.random() < WEB_KILLS:
                self.kill_web_process()
                continue
            nodes = [name for name in self.stack.processes if name != "web"]
            node = self.rng.choice(nodes)
            try:
                children = [child for child in psutil.Process(self.stack.processes[node].pid)
                            .children() if child.status() != psutil.STATUS_ZOMBIE]
                if len(nodes) > 1 and (self.rng.random() < 0.4 or not children):
                    self.stack.stop(node, signal.SIGKILL)  # its pool dies too (PDEATHSIG)
                    self.killed_at.update(dict.fromkeys((c.pid for c in children), time.time()))
                    self.count("node kills", f"SIGKILL node {node}")
                    self.stack.start_worker(f"node{next(fresh)}", CONCURRENCY)
                elif children:
                    (victim := self.rng.choice(children)).send_signal(signal.SIGKILL)
                    self.killed_at[victim.pid] = time.time()
                    self.count("pool-process kills", f"SIGKILL {node} pool {victim.pid}")
            except psutil.Error:
                continue

    def kill_web_process(self) -> None:
        """SIGKILL one of gunicorn's worker processes, whatever request it is serving."""
        try:
            victim = self.rng.choice(psutil.Process(self.stack.processes["web"].pid).children())
            victim.send_signal(signal.SIGKILL)
            self.count("web-process kills", f"SIGKILL web {victim.pid}")
        except (psutil.Error, IndexError):
            pass

    def wait(self, todo: queue.Queue[str], seen: Seen) -> None:
        """WaitOperation (≤ 10 s a call) on names from `todo`, putting back those not done
        yet until the deadline, so a stuck one holds up no other."""
        with requests.Session() as http:
            while self.left() > 0:
                try:
                    name, timeout = todo.get_nowait(), f"{max(1, min(10, int(self.left())))}s"
                except queue.Empty:
                    return
                try:
                    answer = http.post(f"{self.stack.base_url}/v1/{name}:wait",
                                       json={"timeout": timeout}, timeout=30)
                    if answer.status_code in (200, 404):
                        seen[name] = answer.json() if answer.status_code == 200 else None
                except requests.RequestException:
                    time.sleep(0.2)
                if (seen[name] or {"done": True})["done"] is False:
                    todo.put(name)

    def workers_idle(self) -> bool:
        """Wait (30 s at most) until every live node answers and runs nothing."""
        control, end = self.stack.worker_control(), time.monotonic() + 30
        while time.monotonic() < end:
            active = control.inspect(timeout=1).active() or {}
            if len(active) == len(self.stack.processes) - 1 and not any(active.values()):
                return True
            time.sleep(0.5)
        return False

    def overlapping_runs(self) -> tuple[list[str], Counter[str]]:
        """Operations two of whose runs overlapped in time, and the runs by how they ended.

        An unfinished run ends when the chaos killed its process; one the chaos did not kill
        runs on forever as far as we know, so any later run of it counts as overlapping.
        """
        with self.stack.store().redis.pipeline(transaction=False) as pipe:
            for name in self.names:
                pipe.hgetall(runs_key(self.stack.prefix, name))
            recorded: list[dict[str, str]] = pipe.execute()
        overlapping, kinds = [], Counter[str]()
        for name, runs in zip(self.names, recorded, strict=True):
            spans, reach = [], -math.inf
            for run, end in runs.items():
                pid, start = int(run.split(":")[0]), float(run.split(":")[1])
                kinds["finished" if end else "killed" if pid in self.killed_at else "lost"] += 1
                spans.append((start, float(end) if end else self.killed_at.get(pid, math.inf)))
            for start, stop in sorted(spans):
                if start < reach:
                    overlapping.append(name)
                    break
                reach = max(reach, stop)
        return overlapping, kinds


def double_terminal(run: Soak, seen: Seen, final: dict[str, Operation | None]) -> list[str]:
    """Done operations with more than one terminal state: two published; a stored outcome
    that is not exactly the one its state needs; a change after the API showed it done."""
    found = []
    for name, shown in seen.items():
        if not shown or not shown["done"] or (now := final[name]) is None:
            continue
        succeeded = now.state == "SUCCEEDED"  # and only then a response, never an error
        wanted = (now.response is not None) == succeeded and (now.error is None) == succeeded
        before = (shown["metadata"]["state"], shown.get("response", {}).get("value"),
                  shown.get("error", {}).get("code"))
        after = (now.state.value, now.response, (now.status or {}).get("code"))
        if run.terminal[name] > 1 or not wanted or before != after:
            found.append(name)
    return found


def diagnose(stack: Stack, names: list[str]) -> None:
    """For a few bad operations: the stored hash, its runs, where its broker message is
    (queued, or unacknowledged since when), and every log line naming it."""
    client, broker = stack.store().redis, f"{stack.prefix}:broker:"
    unacked, queued = client.hgetall(f"{broker}unacked"), client.lrange(broker + stack.prefix,
                                                                        0, -1)
    for name in names[:5]:
        operation_id = name.rsplit("/", 1)[-1]
        held = [client.zscore(f"{broker}unacked_index", tag) or 0.0
                for tag, message in unacked.items() if operation_id in message]
        where = ", ".join([f"unacked since {datetime.fromtimestamp(t):%H:%M:%S.%f}" for t in held]
                          + ["queued"] * sum(operation_id in m for m in queued)) or "gone"
        print(f"\n{name}: {client.hgetall(Keys(stack.prefix).operation(PROJECT, operation_id))}\n"
              f"  runs: {client.hgetall(runs_key(stack.prefix, name))}; message: {where}")
        for log in sorted(stack.workdir.glob("*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if operation_id in line and ":wait HTTP" not in line:
                    print(f"  {log.stem}: {line}")


def soak(stack: Stack, jobs: int, seed: int, kill_every: float, *,
         restart_broker: bool = False) -> int:
    """Run the soak on a started stack and print its table; how many things went wrong."""
    started, load = time.monotonic(), os.getloadavg()[0]
    run = Soak(stack, random.Random(seed), started + jobs * 0.1 + 120, jobs=jobs,
               restart_broker=restart_broker)
    listening = stack.store()  # kept: dropping a client disconnects its pool, pub/sub included
    pubsub = listening.redis.pubsub()
    pubsub.subscribe(f"{stack.prefix}:changes")
    pubsub.get_message(timeout=5)  # subscribed before the first job
    work = [random_job(run.rng) for _ in range(jobs)]
    clients = [threading.Thread(target=run.submit, args=(work[n::CLIENTS],), daemon=True)
               for n in range(CLIENTS)]
    chaos = threading.Thread(target=run.chaos, args=(kill_every,), daemon=True)
    listener = threading.Thread(target=run.listen, args=(pubsub,), daemon=True)
    try:
        for thread in [listener, chaos, *clients]:
            thread.start()
        while alive := [client for client in clients if client.is_alive()]:
            alive[0].join(timeout=5)
            print(f"{time.monotonic() - started:4.0f} s: accepted {len(run.names)}, done "
                  f"{len(run.terminal)}, {dict(run.counts)}", file=sys.stderr)
        time.sleep(CHAOS_TAIL)
        run.calm.set()
        chaos.join(timeout=60)
        run.deadline = max(run.deadline, time.monotonic() + 60)  # every operation gets a look
        seen: Seen = {name: {"name": name, "done": False} for name in run.names}
        todo: queue.Queue[str] = queue.Queue()
        for name in run.names:
            todo.put(name)
        with ThreadPoolExecutor(WAITERS) as pool:
            list(pool.map(lambda _: run.wait(todo, seen), range(WAITERS)))
        idle = run.workers_idle()
        time.sleep(stack.settings.lease_seconds + 1)  # a late write would have landed by now
    finally:
        run.calm.set()
        chaos.join(timeout=60)  # no node may start once the stack is torn down
    store = stack.store()
    final = {name: store.get(PROJECT, name.rsplit("/", 1)[-1]) for name in run.names}
    done = [op for op in seen.values() if op and op["done"]]
    lost = [name for name, op in seen.items() if op is None or final[name] is None]
    stuck = [name for name, op in seen.items() if op and not op["done"]]
    double, (overlapping, runs) = double_terminal(run, seen, final), run.overlapping_runs()
    run.stop.set()
    listener.join(timeout=5)  # before the stack, and the Redis it reads, is torn down
    pubsub.close()
    states = Counter(op["metadata"]["state"] for op in done)
    codes = Counter(Code(op["error"]["code"]).name for op in done if "error" in op)
    attempts = Counter(op["metadata"].get("attempt", 0) for op in done)
    extra, unpublished = (int(store.redis.zcard(store.keys.index(PROJECT)))
                          - len(run.names), int(store.redis.zcard(store.keys.task_outbox(PROJECT))))
    elapsed = run.last_done - started
    rows = [
        ("jobs asked / accepted", f"{jobs} / {len(run.names)}"),
        ("succeeded / failed (by code) / cancelled",
         f"{states['SUCCEEDED']} / {states['FAILED']} {dict(codes)} / {states['CANCELLED']}"),
        ("lost (404)", len(lost)), ("stuck (not done by the deadline)", len(stuck)),
        ("two terminal states", len(double)), ("ran twice at once", len(overlapping)),
        ("operations without an accepted submission", extra),
        ("done, but no terminal change seen on pub/sub (listener check)",
         sum(1 for name, op in seen.items() if op and op["done"] and not run.terminal[name])),
        ("operations by attempt", dict(sorted(attempts.items()))),
        ("runs finished / killed / unfinished and not killed",
         f"{runs['finished']} / {runs['killed']} / {runs['lost']}"),
        ("pool-process kills / node kills (each replaced) / web-process kills",
         f"{run.counts['pool-process kills']} / {run.counts['node kills']} / "
         f"{run.counts['web-process kills']}"),
        ("client resubmits (503, connection error)", run.counts["client resubmits"]),
        ("broker: " + stack.settings.effective_broker_url.split("://")[0]
         + "; connection drops / restarts",
         f"{run.counts['broker connection drops']} / {run.counts['broker restarts']}"),
        ("task outbox entries left unpublished", unpublished),
        ("workers idle at the end", "yes" if idle else "**no**"),
        ("wall time first submit → last done; throughput",
         f"{elapsed:.0f} s; {len(done) / elapsed:.1f} jobs/s"),
        ("seed; kill every; load avg start / end",
         f"{seed}; {kill_every:g} s; {load:.2f} / {os.getloadavg()[0]:.2f}"),
    ]
    width = max(len(label) for label, _ in rows)  # bench/report.py's table is for timings
    print(f"| {'soak':<{width}} | |\n|{'-' * (width + 2)}|---|")
    print("\n".join(f"| {label:<{width}} | {value} |" for label, value in rows))
    diagnose(stack, lost + stuck + double + overlapping)
    return len(lost + stuck + double + overlapping) + abs(extra) + jobs - len(run.names) \
        + unpublished


def main(argv: list[str] | None = None) -> int:
    """Start the deployment, soak it, clean everything up; 1 if anything went wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs to submit (2000)")
    parser.add_argument("--seed", type=int, help="random seed (default: the time)")
    parser.add_argument("--kill-every", type=float, default=2.0,
                        help="mean seconds between kills (2)")
    parser.add_argument("--broker", default="",
                        help="broker URL (default: the store's Redis); amqp://... for "
                             "RabbitMQ, on 127.0.0.1, in a virtual host of its own")
    parser.add_argument("--restart-broker", action="store_true",
                        help="with RabbitMQ: restart it once, halfway (disturbs its other "
                             "users)")
    args = parser.parse_args(argv)
    # Imported here: the stack's API and workers import this module too, and must start fast.
    from bench.run import LOOPBACK, check_local_redis
    from tests.stack import running_stack

    check_local_redis()
    if args.broker and urlsplit(args.broker).hostname not in LOOPBACK:
        raise SystemExit("--broker must be on this machine: the soak contacts 127.0.0.1 only")
    broker = {"OPQUEUE_BROKER_URL": args.broker} if args.broker else {}
    seed = int(time.time()) if args.seed is None else args.seed
    workdir = Path(tempfile.mkdtemp(prefix="opqueue-soak-"))
    try:
        with ExitStack() as cleanup:
            for attempt in range(1, 4):
                try:
                    stack = cleanup.enter_context(running_stack(
                        workdir, (), **STACK_ENV, **broker))
                    break
                except requests.Timeout:  # the stack's probe allows 2 s for the first answer
                    if attempt == 3:
                        raise
                    print("the API answered its first readiness probe late; again", file=sys.stderr)
            for n in range(1, NODES + 1):
                stack.start_worker(f"node{n}", CONCURRENCY)
            return 1 if soak(stack, args.jobs, seed, args.kill_every,
                             restart_broker=args.restart_broker) else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
