"""`GET /metrics` in Prometheus format.

Operation metrics come from the counters the store scripts keep in Redis (core/metrics.py),
so they are exact across every API and worker process. Request latency is measured in
the API processes; the `web` processes share it through prometheus-client's multiprocess
mode (`PROMETHEUS_MULTIPROC_DIR`, which web/server.py sets up).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from app.auth import public
from app.openapi import documented
from app.services import services
from core import metrics
from core.store import OperationStore
from workers.relay import OUTBOX_WAIT_SECONDS

bp = Blueprint("metrics", __name__)

REQUEST_SECONDS = Histogram(
    "opqueue_http_request_duration_seconds", "API request latency, by route, method and code",
    ["route", "method", "code"], registry=None)


class OperationsCollector(Collector):
    """Operation counters and histograms, read from Redis at scrape time."""

    def __init__(self, store: OperationStore) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        found = metrics.read(self._store.redis, self._store.keys)
        created = CounterMetricFamily("opqueue_operations_created",
                                      "Operations created, by job", labels=["job"])
        for job, value in sorted(found.created.items()):
            created.add_metric([job], value)
        finished = CounterMetricFamily("opqueue_operations_finished",
                                       "Operations done, by job and final state",
                                       labels=["job", "state"])
        for (job, state), value in sorted(found.finished.items()):
            finished.add_metric([job, state], value)
        active = GaugeMetricFamily("opqueue_operations",
                                   "Operations now PENDING, RUNNING or CANCELLING, by job",
                                   labels=["job", "state"])
        for (job, state), value in sorted(found.active.items()):
            active.add_metric([job, state], value)
        yield from (created, finished, active)
        for name, text, histograms in (
                ("opqueue_operation_run_seconds", "Run time of the last attempt, by job",
                 found.run),
                ("opqueue_operation_queue_wait_seconds",
                 "Time from creation to each start, by job", found.wait)):
            family = HistogramMetricFamily(name, text, labels=["job"])
            for job, histogram in sorted(histograms.items()):
                family.add_metric([job], [(le, histogram.buckets.get(le, 0.0))
                                          for le in metrics.bucket_labels()], histogram.sum)
            yield family


@bp.get("/metrics")
@public
@documented("PrometheusText", content="text/plain; version=0.0.4")
def get_metrics() -> Response:
    """The Prometheus text exposition of every opqueue metric."""
    registry = CollectorRegistry()
    if services().settings.metrics_dir:
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
        registry.register(OUTBOX_WAIT_SECONDS)
    registry.register(OperationsCollector(services().store))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def measure_requests(app: Flask) -> None:
    """Time every request of `app` into REQUEST_SECONDS."""

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("started")
        if started is not None:
            route = request.url_rule.rule if request.url_rule else "unmatched"
            REQUEST_SECONDS.labels(route, request.method, str(response.status_code)).observe(
                time.perf_counter() - started)
        return response

    del _start, _observe
