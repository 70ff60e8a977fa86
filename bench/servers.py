"""Which HTTP server serves the API: the same app factory under each candidate, same run,
alternating, each started afresh per round.

    python bench/servers.py [--quick] [--rounds N]

Per server: `/healthz`, GetOperation of a done operation, `:run` (no worker consuming),
and GetOperation again while 1,000 `:wait` calls are parked (bench/parked.py); 32
keep-alive clients from wrk. Prints one Markdown table of medians (min-max) over rounds.
Not part of `make bench`: it is how the server in the Procfile was chosen.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the repo's packages importable

from bench import environment  # noqa: E402
from bench.load import hammer  # noqa: E402
from bench.parked import parked_waits  # noqa: E402
from bench.reads import done_operation  # noqa: E402
from core.embedded_redis import free_port  # noqa: E402
from tests.stack import Stack, store_deployment  # noqa: E402
from tests.waiting import eventually  # noqa: E402

CLIENTS = 32
PARKED = 1000
FIGURES = ("/healthz", "GetOperation", ":run", f"GetOperation, {PARKED:,} parked :wait")


def _granian(threads: int) -> tuple[list[str], dict[str, str]]:
    return (["granian", "--interface", "wsgi", "--factory", "--workers", "2",
             "--blocking-threads", str(threads), "--backpressure", str(threads),
             "--access-log", "--host", "127.0.0.1", "--port", "{port}", "app:create_app"],
            {"OPQUEUE_WEB_THREADS": str(threads)})


def _gunicorn(threads: int) -> tuple[list[str], dict[str, str]]:
    # What the Procfile ran before Granian (its gunicorn.conf.py): gthread, an access line.
    return (["gunicorn", "--worker-class", "gthread", "--workers", "2", "--threads",
             str(threads), "--bind", "127.0.0.1:{port}", "--access-logfile", "-",
             "app:create_app()"], {"OPQUEUE_WEB_THREADS": str(threads)})


# name → (command, extra environment); "{port}" is filled in per start.
SERVERS: dict[str, tuple[list[str], dict[str, str]]] = {
    "gunicorn gthread 2 x 128": _gunicorn(128),
    "gunicorn gthread 2 x 640": _gunicorn(640),
    "granian wsgi 2 x 8": _granian(8),
    "granian wsgi 2 x 640": _granian(640),
}


def _start(stack: Stack, command: list[str], env: dict[str, str], port: int,
           log: Path) -> subprocess.Popen[bytes]:
    full = {**stack.env, **env, "PORT": str(port),
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="opqueue-metrics-")}
    with log.open("ab") as out:
        process = subprocess.Popen([part.format(port=port) for part in command], cwd=ROOT,
                                   env=full, stdout=out, stderr=subprocess.STDOUT)
    def ready() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok
        except requests.RequestException:
            return False

    eventually(ready, timeout=60, what=f"{command[0]} to answer")
    return process


def _measure(stack: Stack, base: str, seconds: float) -> list[float]:
    project = f"bench-{uuid.uuid4().hex[:12]}"
    name = done_operation(stack, project)
    figures = [hammer(f"{base}/healthz", connections=CLIENTS, seconds=seconds).rate,
               hammer(f"{base}/v1/{name}", connections=CLIENTS, seconds=seconds).rate,
               hammer(f"{base}/v1/projects/{project}/jobs/bench.noop:run",
                      connections=CLIENTS, seconds=seconds, method="POST",
                      body={"input": {}}).rate]
    environment.purge_queue(stack)
    store = stack.store()
    with parked_waits(base, store, project, PARKED, timeout=20) as parked:
        if parked < PARKED:
            print(f"only {parked} :wait calls parked", file=sys.stderr)
        figures.append(hammer(f"{base}/v1/{name}", connections=CLIENTS,
                              seconds=seconds).rate)
    store.redis.close()
    environment.forget_project(stack, project)
    return figures


def _table(results: dict[str, list[list[float]]]) -> str:
    lines = ["| server | " + " | ".join(FIGURES) + " |",
             "|---" * (len(FIGURES) + 1) + "|"]
    for name, runs in results.items():
        cells = []
        for column in range(len(FIGURES)):
            values = [run[column] for run in runs]
            cells.append(f"{statistics.median(values):,.0f}/s "
                         f"({min(values):,.0f}-{max(values):,.0f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Alternate the servers for the rounds asked; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per figure")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", choices=sorted(SERVERS))
    args = parser.parse_args(argv)
    chosen = args.only or list(SERVERS)
    workdir = Path(tempfile.mkdtemp(prefix="opqueue-servers-"))
    results: dict[str, list[list[float]]] = {name: [] for name in chosen}
    load = environment.load_average()
    with store_deployment(workdir) as (store_env, _):
        stack = Stack(store_env["REDIS_URL"], workdir, {
            **store_env, "OPQUEUE_JOB_MODULES": "core.demo_jobs,tests.jobs,bench.jobs",
            "OPQUEUE_MAX_LONG_REQUESTS": str(PARKED + 100),
            "OPQUEUE_MAX_LONG_REQUESTS_PER_KEY": str(PARKED + 100),
            "OPQUEUE_RATE_LIMIT_PER_SECOND": "0"})
        try:
            for _ in range(args.rounds):
                for name in chosen:
                    command, env = SERVERS[name]
                    port = free_port()
                    process = _start(stack, command, env, port, workdir / "server.log")
                    try:
                        results[name].append(_measure(stack, f"http://127.0.0.1:{port}",
                                                      1.0 if args.quick else 3.0))
                    finally:
                        process.terminate()
                        process.wait(timeout=60)
                    print(name, [f"{x:,.0f}" for x in results[name][-1]], file=sys.stderr)
        finally:
            stack.close()
    print(_table(results))
    print(f"\nload average at start {load}, at end {environment.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
