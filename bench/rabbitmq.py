"""Submission and end-to-end throughput again with RabbitMQ as the broker, beside raw Celery
on the same RabbitMQ, and how long task-outbox entries wait for their broker's confirm.

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
from prometheus_client.parser import text_string_to_metric_families

from bench import environment, throughput
from bench.report import Row
from tests.stack import Stack, rabbitmq_unavailable, rabbitmq_vhost

ON_RABBITMQ = ("RabbitMQ broker (opqueue: quorum queue, persistent messages, publisher "
               "confirms; baseline: raw Celery's defaults on the same virtual host, a classic "
               "queue without confirms), Redis store; ")
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
                 quick: bool, *, outbox_wait: bool = False) -> list[Row]:
    reason = rabbitmq_unavailable()
    if reason is not None:
        print(f"skipping the RabbitMQ benchmarks: {reason}", file=sys.stderr)
        return []
    with rabbitmq_deployment(stack) as other:
        rows = [replace(row, figure=row.figure.replace(" (", " on RabbitMQ (", 1),
                        note=ON_RABBITMQ + row.note.replace("same Redis", "same RabbitMQ"))
                for row in benchmark(other, quick)]
        if outbox_wait:
            rows += outbox_wait_rows(other)
    return rows


def submit_single(stack: Stack, quick: bool = False) -> list[Row]:
    """`throughput.submit_single` on RabbitMQ, and the outbox wait under that load."""
    return _on_rabbitmq(throughput.submit_single, stack, quick, outbox_wait=True)


def end_to_end(stack: Stack, quick: bool = False) -> list[Row]:
    """`throughput.end_to_end` on RabbitMQ."""
    return _on_rabbitmq(throughput.end_to_end, stack, quick)


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
                note="every entry of the submit runs above, as the API's "
                     f"`{WAIT_METRIC}` histogram has it" if label == "p50" else "")
            for label, q in (("p50", 0.5), ("p99", 0.99))]
