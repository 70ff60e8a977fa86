"""Submission and end-to-end throughput again with RabbitMQ as the broker, beside raw Celery
on the same RabbitMQ (with Celery's defaults, and for submission also publishing as opqueue
does: with confirms, to a quorum queue), and how long task-outbox entries wait for their
broker's confirm.

Each benchmark starts a second deployment next to the bench's: the same Redis as its store,
a RabbitMQ virtual host of its own (127.0.0.1:5672) as its broker, torn down, virtual host
and all, at the end. Where no RabbitMQ answers, the benchmarks say why and add no rows.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import requests
from celery import Celery
from kombu import Queue
from prometheus_client.parser import text_string_to_metric_families

from bench import baseline, environment, throughput
from bench.report import Row, median_row
from tests.stack import Stack, rabbitmq_unavailable, rabbitmq_vhost

ON_RABBITMQ = ("RabbitMQ broker (opqueue: quorum queue, persistent messages, publisher "
               "confirms), Redis store; ")
CELERY_DEFAULTS = "Celery's defaults (a classic queue, no publisher confirms)"
WAIT_METRIC = "opqueue_task_outbox_wait_seconds"


@contextmanager
def rabbitmq_deployment(stack: Stack) -> Iterator[Stack]:
    """A deployment like `stack` (same Redis, same settings) on a private RabbitMQ vhost."""
    environment.use_workers(stack, {})  # the bench's own nodes would only compete for CPU
    with rabbitmq_vhost() as url:
        workdir = stack.workdir / f"rabbitmq-{uuid.uuid4().hex[:6]}"
        workdir.mkdir()
        other = Stack(stack.redis_url, workdir, {**stack.extra_env, "OPQUEUE_BROKER_URL": url})
        try:
            other.start_web()
            yield other
        finally:
            environment.use_workers(other, {})
            other.close()


def _on_rabbitmq(benchmark: Callable[[Stack, bool], list[Row]], stack: Stack,
                 quick: bool) -> list[Row]:
    reason = rabbitmq_unavailable()
    if reason is not None:
        print(f"skipping the RabbitMQ benchmarks: {reason}", file=sys.stderr)
        return []
    with rabbitmq_deployment(stack) as other:
        return benchmark(other, quick)


def _relabelled(rows: list[Row]) -> list[Row]:
    """Rows of bench/throughput.py, measured on RabbitMQ, saying so."""
    return [replace(row, figure=row.figure.replace(" (", " on RabbitMQ (", 1),
                    note=f"{ON_RABBITMQ}baseline: raw Celery with {CELERY_DEFAULTS}; "
                         + row.note.replace("same Redis", "same RabbitMQ"))
            for row in rows]


def submit_single(stack: Stack, quick: bool = False) -> list[Row]:
    """`throughput.submit_single` on RabbitMQ; again beside raw Celery publishing with
    confirms to a quorum queue; and the outbox wait under that load."""
    return _on_rabbitmq(_submit_single, stack, quick)


def end_to_end(stack: Stack, quick: bool = False) -> list[Row]:
    """`throughput.end_to_end` on RabbitMQ."""
    return _on_rabbitmq(lambda other, fast: _relabelled(throughput.end_to_end(other, fast)),
                        stack, quick)


def _submit_single(stack: Stack, quick: bool) -> list[Row]:
    rows = _relabelled(throughput.submit_single(stack, quick))
    runs, seconds = (2, 1.0) if quick else (5, 3.0)
    ours: list[float] = []
    theirs: list[float] = []
    with confirming_yardstick(stack) as (app, prefix):
        for _ in range(runs):
            theirs.append(throughput.apply_async_rate(app, prefix, seconds))
            ours.append(throughput.submit_load(stack, seconds).rate)
    return [*rows, median_row(
        "submit over HTTP, 1 job per call, 32 keep-alive clients on RabbitMQ, beside Celery "
        "with confirms (jobs/s)", ours, unit="/s", baseline=theirs, higher_is_better=True,
        note=f"{ON_RABBITMQ}{runs} more runs of {seconds:g} s each side, alternating; "
             "baseline: `apply_async` of a no-op task in a loop from one process, publishing "
             "as opqueue does: persistent, to a quorum queue, each publish waiting for its "
             "confirm (Celery's `confirm_publish`)"),
        *outbox_wait_rows(stack)]


@contextmanager
def confirming_yardstick(stack: Stack) -> Iterator[tuple[Celery, str]]:
    """The baseline Celery app publishing with confirms to a quorum queue of its own on
    `stack`'s RabbitMQ (removed with the virtual host)."""
    prefix = f"{stack.prefix}:baseline-confirms-{uuid.uuid4().hex[:6]}"
    app = baseline.baseline_app(stack.settings.effective_broker_url, prefix)
    app.conf.update(broker_transport_options={"confirm_publish": True}, task_queues=[
        Queue(prefix, durable=True, queue_arguments={"x-queue-type": "quorum"})])
    yield app, prefix


def outbox_wait_rows(stack: Stack) -> list[Row]:
    """p50 and p99 of the time from storing an operation to its message's confirm, as the
    API's histogram (`/metrics`) has it: the bound of the bucket holding each percentile."""
    text = requests.get(f"{stack.base_url}/metrics", timeout=10).text
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        if family.name == WAIT_METRIC:
            buckets = sorted((float(sample.labels["le"]), sample.value)
                             for sample in family.samples if sample.name.endswith("_bucket"))
    total = buckets[-1][1] if buckets else 0.0
    return [Row(figure=f"task outbox: store → broker confirm, {label} (bucket bound)",
                value=next((le for le, count in buckets if count >= q * total), float("nan")),
                samples=int(total), target=0.050 if label == "p99" else None,
                note="every entry of the submit runs above (from just before the script "
                     "that stores it to its confirm), as the API's "
                     f"`{WAIT_METRIC}` histogram has it (5 ms buckets up to 60 ms)"
                if label == "p50" else "")
            for label, q in (("p50", 0.5), ("p99", 0.99))]
