"""Run the benchmarks against one private opqueue deployment and print one table.

    python bench/run.py [--quick] [--only NAME ...] [--output PATH]

The deployment (the API on Granian, the gRPC server, Celery workers, and a private embedded Redis
unless REDIS_URL is set) lives under a private key prefix and is torn down and cleaned at
exit. A full run also writes the table, with the machine and versions it ran on, to
bench/RESULTS.md; `--quick` (tiny counts, a smoke run) writes nothing unless given
`--output`. Benchmarks print figures; none of them passes or fails on a timing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the repo's packages importable

from bench import (  # noqa: E402
    commands,
    environment,
    grpc_calls,
    listing,
    memory,
    progress,
    rabbitmq,
    reads,
    throughput,
    wait_cancel,
)
from bench.report import Row, markdown_notes, markdown_table  # noqa: E402
from core.config import Settings, redis_configured  # noqa: E402
from tests.stack import Stack, running_stack  # noqa: E402

Benchmark = Callable[[Stack, bool], list[Row]]

# name → function(stack, quick) returning rows, in the order they run: families that need
# the same worker nodes are next to each other, since each starts the ones it needs.
BENCHMARKS: dict[str, Benchmark] = {
    "submit": throughput.submit_single,
    "batch-submit": throughput.submit_batch,
    "get": reads.get_operation,
    "grpc": grpc_calls.grpc_calls,
    "list": listing.list_operations,
    "end-to-end": throughput.end_to_end,
    "memory": memory.memory_per_operation,
    "commands": commands.redis_commands,
    "progress": progress.progress_rate,
    "wait-wakeup": wait_cancel.wakeup_latency,
    "cancel": wait_cancel.cancel_latency,
    "cpu-scaling": throughput.cpu_scaling,
    "submit-rabbitmq": rabbitmq.submit_single,  # each on a deployment of its own
    "end-to-end-rabbitmq": rabbitmq.end_to_end,
}
# A short grace period keeps the non-cooperative cancel benchmark quick (it is in the table);
# bench/jobs.py adds the no-op and progress jobs.
# The long-request caps and the threads are raised so that 1,000 `:wait` calls can be
# parked at once (bench/reads.py).
STACK_ENV = {"OPQUEUE_CANCEL_GRACE_SECONDS": "2",
             "OPQUEUE_JOB_MODULES": "core.demo_jobs,tests.jobs,bench.jobs",
             "OPQUEUE_MAX_LONG_REQUESTS": "1100", "OPQUEUE_MAX_LONG_REQUESTS_PER_KEY": "1100",
             "OPQUEUE_WEB_THREADS": "1100"}
ANALYSIS = "## What limits each figure"  # from here on, RESULTS.md is written by hand
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "RESULTS.md"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny counts: a smoke run that writes no RESULTS.md")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"where to write the results (default: {DEFAULT_OUTPUT.name} "
                             "on full runs, nowhere with --quick)")
    return parser.parse_args(argv)


def check_local_redis() -> None:
    """Refuse a REDIS_URL off this machine: benchmarks contact 127.0.0.1 only."""
    if not redis_configured():
        return
    url = urlsplit(Settings.from_env().redis_url)
    if url.scheme != "unix" and url.hostname not in LOOPBACK:
        raise SystemExit(f"REDIS_URL points at {url.hostname}; benchmarks use a local Redis only")


def document(rows: list[Row], facts: list[str], *, command: str, quick: bool,
             seconds: float, load: tuple[str, str], analysis: str = "") -> str:
    """The results as Markdown: the table, its notes, and what it was measured on."""
    missed = [row.figure for row in rows if row.met is False]
    return "\n".join([
        "# opqueue benchmarks",
        "",
        f"`{command}` at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {seconds:.0f} s"
        + (" (--quick: tiny counts, smoke run only)" if quick else "") + ".",
        "Single runs on a shared machine: treat the figures as indicative, not exact.",
        "",
        markdown_table(rows),
        "",
        markdown_notes(rows),
        "",
        "Targets not met in this run: " + ("; ".join(missed) if missed else "none") + "."
        + (f" Why: see [{ANALYSIS[3:]}](#what-limits-each-figure)." if missed else ""),
        "",
        "## Environment",
        "",
        *(f"- {fact}" for fact in facts),
        f"- load average (1/5/15 min) at start {load[0]}, at end {load[1]}",
        "",
        *([analysis.rstrip(), ""] if analysis else []),
    ])


def kept_analysis(path: Path | None) -> str:
    """The hand-written part of an existing results file (from ANALYSIS on), if any."""
    if path is None or not path.exists():
        return ""
    text = path.read_text()
    at = text.find(ANALYSIS)
    return text[at:] if at >= 0 else ""


def main(argv: list[str] | None = None) -> int:
    """Start the deployment, run the chosen benchmarks, print and maybe write the table."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    check_local_redis()
    chosen = args.only or list(BENCHMARKS)
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    started = time.perf_counter()
    load_at_start = environment.load_average()
    rows: list[Row] = []
    workdir = Path(tempfile.mkdtemp(prefix="opqueue-bench-"))
    try:
        with running_stack(workdir, (), with_grpc=True, **STACK_ENV) as stack:
            facts = environment.describe(stack)
            for name in chosen:
                print(f"running {name}…", file=sys.stderr, flush=True)
                rows += BENCHMARKS[name](stack, args.quick)
    except BaseException:
        print(f"failed; the processes' logs are kept in {workdir}", file=sys.stderr)
        raise
    shutil.rmtree(workdir)
    command = " ".join(["python bench/run.py", *argv])
    text = document(rows, facts, command=command, quick=args.quick,
                    seconds=time.perf_counter() - started,
                    load=(load_at_start, environment.load_average()),
                    analysis=kept_analysis(output or DEFAULT_OUTPUT))
    print(text)
    if output is not None:
        output.write_text(text)
        print(f"written to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
