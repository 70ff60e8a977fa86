"""Run the benchmarks against one private opqueue deployment and print one table.

    python bench/run.py [--quick] [--only NAME ...] [--output PATH]

The deployment (gunicorn, Celery workers, and a private embedded Redis unless REDIS_URL is
set) lives under a private key prefix and is torn down and cleaned at exit. A full run also
writes the table, with the machine and versions it ran on, to bench/RESULTS.md; `--quick`
(tiny counts, a smoke run) writes nothing unless given `--output`. Benchmarks print
figures; none of them passes or fails on a timing.
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

from bench import environment, wait_cancel  # noqa: E402
from bench.report import Row, markdown_notes, markdown_table  # noqa: E402
from core.config import Settings, redis_configured  # noqa: E402
from tests.stack import Stack, running_stack  # noqa: E402

Benchmark = Callable[[Stack, bool], list[Row]]

# name → function(stack, quick) returning rows; issue #6 adds its families here.
BENCHMARKS: dict[str, Benchmark] = {
    "wait-wakeup": wait_cancel.wakeup_latency,
    "cancel": wait_cancel.cancel_latency,
}
WORKERS = ("w1", "w2")  # two worker nodes, each with Stack.start_worker's concurrency of 2
# A short grace period keeps the non-cooperative cancel benchmark quick (it is in the table).
STACK_ENV = {"OPQUEUE_CANCEL_GRACE_SECONDS": "2"}
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
             seconds: float, load: tuple[str, str]) -> str:
    """The results as Markdown: the table, its notes, and what it was measured on."""
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
        "## Environment",
        "",
        *(f"- {fact}" for fact in facts),
        f"- load average (1/5/15 min) at start {load[0]}, at end {load[1]}",
        "",
    ])


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
        with running_stack(workdir, WORKERS, **STACK_ENV) as stack:
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
                    load=(load_at_start, environment.load_average()))
    print(text)
    if output is not None:
        output.write_text(text)
        print(f"written to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
