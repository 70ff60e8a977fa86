"""Soak test (issue #5): thousands of jobs while worker, node and API processes are SIGKILLed.

    .venv/bin/python bench/soak.py [--jobs 2000] [--seed N] [--kill-every 2.0] [--broker URL]
                                   [--redis-mode cluster] [--primary-kills N]

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
Runs are seen without touching the jobs: the workers also load bench/soak_runs.py as a job
module, whose Celery signal handlers record each run's pid and span in the store.

With `--redis-mode cluster` the store is a Redis Cluster of three primaries, each with a
replica (tests/redis_deployments.py), the broker a Redis of its own (or `--broker`);
`--redis-mode sentinel` is a primary with two replicas behind three sentinels. On either,
`--primary-kills` times (default once, halfway through the submissions) the chaos SIGKILLs
the primary holding the soak's project and waits for its replica's promotion.
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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import redis
import requests
from redis.exceptions import RedisClusterException

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench.soak_runs import runs_key
from core.codes import Code
from core.connection import redis_client
from core.keyspace import Keys
from core.operation import Operation
from core.states import TERMINAL
from tests.stack import (
    TOPOLOGIES,
    Stack,
    drop_broker_connections,
    rabbitmqctl,
    running_stack,
)

PROJECT, NODES, CONCURRENCY, CLIENTS, WAITERS = "soak", 3, 2, 4, 16
BACKLOG = 60  # accepted, not yet done: submission keeps pace, so the chaos hits running jobs
CHAOS_TAIL = 5.0  # seconds of chaos after the last submission
WEB_KILLS = 0.1  # the share of the chaos's kills that hit an API process
BROKER_DROPS = 8  # with RabbitMQ, every this many chaos events one drops its connections
STACK_ENV = {"OPQUEUE_LEASE_SECONDS": "3", "OPQUEUE_SUPERVISE_INTERVAL_SECONDS": "0.25",
             "OPQUEUE_MAX_REDELIVERIES": "10",
             "OPQUEUE_JOB_MODULES": "core.demo_jobs,tests.jobs,bench.soak_runs"}
Seen = dict[str, dict[str, Any] | None]  # name → the operation as the API showed it; None: 404


def log(note: str) -> None:
    """A line of the run's log, with the time."""
    print(f"{datetime.now():%H:%M:%S.%f} {note}", file=sys.stderr)


def random_job(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A short job: mostly a stepped sleep of 0-0.3 s, else a small prime count."""
    if rng.random() < 0.7:
        return "demo.sleep", {"seconds": round(rng.uniform(0, 0.3), 2), "steps": rng.randint(1, 4)}
    return "demo.primes", {"below": rng.randint(1_000, 30_000), "chunks": rng.randint(1, 4)}


class Soak:
    """One soak run's threads and what they saw; every loop ends by `deadline` (monotonic)."""

    def __init__(self, stack: Stack, rng: random.Random, deadline: float, *, jobs: int,
                 restart_broker: bool = False, primary_kills: int = 0) -> None:
        self.stack, self.rng, self.deadline, self.jobs = stack, rng, deadline, jobs
        self.restart_broker = restart_broker  # once, halfway through the submissions
        # After how many accepted submissions each SIGKILL of the store's primary comes.
        self.primary_kills = [jobs * (n + 1) // (primary_kills + 1) for n in range(primary_kills)]
        self.subscribed = threading.Event()
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
            log(note)

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

    def listen(self) -> None:
        """Count the terminal changes the store publishes about the soak's project, per
        operation; after losing the store (a failover), subscribe again: what was published
        meanwhile is missed, which only the listener check row shows."""
        store, sharded = self.stack.store(), self.stack.settings.redis_mode == "cluster"
        channel = store.keys.changes(PROJECT)
        while not self.stop.is_set():
            pubsub: Any = store.redis.pubsub()
            try:
                (pubsub.ssubscribe if sharded else pubsub.subscribe)(channel)
                while not self.stop.is_set():
                    message = (pubsub.get_sharded_message(timeout=0.5) if sharded
                               else pubsub.get_message(timeout=0.5))
                    if message and message["type"] in ("subscribe", "ssubscribe"):
                        self.subscribed.set()
                    elif message and message["type"] in ("message", "smessage") and \
                            (change := json.loads(message["data"]))["state"] in TERMINAL:
                        with self.lock:
                            self.terminal[change["name"]] += 1
                            self.last_done = time.monotonic()
            except (redis.RedisError, RedisClusterException) as exc:
                self.count("listener reconnects", f"change listener lost the store ({exc})")
                time.sleep(0.5)
            finally:
                pubsub.close()

    def chaos(self, every: float) -> None:
        """Every `every` s (jittered) SIGKILL a random pool process, or a node and replace it,
        or now and then an API process (gunicorn starts another; clients resubmit)."""
        fresh = itertools.count(NODES + 1)
        rabbitmq = self.stack.settings.rabbitmq_broker
        for event in itertools.count(1):
            if self.calm.wait(every * self.rng.uniform(0.5, 1.5)):
                return
            if self.primary_kills and len(self.names) >= self.primary_kills[0]:
                self.primary_kills.pop(0)
                self.kill_primary()
                continue
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

    def kill_primary(self) -> None:
        """SIGKILL the store's primary serving the soak's project; wait for its replica's
        promotion (and the killed node's return as a replica)."""
        deployment, began = self.stack.replicated, time.monotonic()
        assert deployment is not None, "a primary to kill needs a replicated store"
        log("SIGKILL the store's primary of the soak's project")
        deployment.kill_primary(self.stack.store().keys.index(PROJECT))
        self.count("primary kills", f"a replica took over in {time.monotonic() - began:.1f} s")

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
    messages = redis_client(stack.settings.effective_broker_url) \
        if stack.settings.redis_broker else None  # RabbitMQ's are not looked at
    unacked = messages.hgetall(f"{broker}unacked") if messages else {}
    queued = messages.lrange(broker + stack.prefix, 0, -1) if messages else []
    for name in names[:5]:
        operation_id = name.rsplit("/", 1)[-1]
        held = [(messages.zscore(f"{broker}unacked_index", tag) if messages else 0.0) or 0.0
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
         restart_broker: bool = False, primary_kills: int = 0) -> int:
    """Run the soak on a started stack and print its table; how many things went wrong."""
    started, load = time.monotonic(), os.getloadavg()[0]
    run = Soak(stack, random.Random(seed), started + jobs * 0.1 + 120, jobs=jobs,
               restart_broker=restart_broker, primary_kills=primary_kills)
    work = [random_job(run.rng) for _ in range(jobs)]
    clients = [threading.Thread(target=run.submit, args=(work[n::CLIENTS],), daemon=True)
               for n in range(CLIENTS)]
    chaos = threading.Thread(target=run.chaos, args=(kill_every,), daemon=True)
    listener = threading.Thread(target=run.listen, daemon=True)
    try:
        listener.start()
        if not run.subscribed.wait(10):  # subscribed before the first job
            raise RuntimeError("could not subscribe to the soak project's changes")
        for thread in [chaos, *clients]:
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
    states = Counter(op["metadata"]["state"] for op in done)
    codes = Counter(Code(op["error"]["code"]).name for op in done if "error" in op)
    attempts = Counter(op["metadata"].get("attempt", 0) for op in done)
    extra, unpublished = (int(store.redis.zcard(store.keys.index(PROJECT)))
                          - len(run.names), int(store.redis.zcard(store.keys.task_outbox(PROJECT))))
    elapsed = max(run.last_done - started, 1e-3)
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
        (f"store: {stack.settings.redis_mode}; primary kills (each replica promoted) / "
         "listener reconnects",
         f"{run.counts['primary kills']} / {run.counts['listener reconnects']}"),
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
    parser.add_argument("--redis-mode", choices=TOPOLOGIES, default="standalone",
                        help="the store: one Redis (default), a primary with replicas "
                             "behind sentinels, or a cluster of three shards (its broker "
                             "then a Redis of its own, unless --broker)")
    parser.add_argument("--primary-kills", type=int, default=None,
                        help="SIGKILLs of the store's primary, spread over the submissions "
                             "(default: 1 with sentinel or cluster, else 0)")
    args = parser.parse_args(argv)
    from bench.run import LOOPBACK, check_local_redis  # it imports every benchmark

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
                        workdir, (), args.redis_mode, **STACK_ENV, **broker))
                    break
                except requests.Timeout:  # the stack's probe allows 2 s for the first answer
                    if attempt == 3:
                        raise
                    print("the API answered its first readiness probe late; again", file=sys.stderr)
            for n in range(1, NODES + 1):
                stack.start_worker(f"node{n}", CONCURRENCY)
            kills = (args.redis_mode != "standalone") if args.primary_kills is None \
                else args.primary_kills
            return 1 if soak(stack, args.jobs, seed, args.kill_every,
                             restart_broker=args.restart_broker, primary_kills=kills) else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
