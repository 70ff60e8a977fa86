"""/metrics from the store's counters, and log lines that name their operation (#8)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from core import logs, record
from core.config import Settings
from core.states import Event
from core.store import OperationStore
from core.timestamps import now_micros
from tests.conftest import run_job


def samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True))
            for sample in family.samples}


def test_metrics_count_operations_by_job_and_state(client: FlaskClient,
                                                   store: OperationStore) -> None:
    ids = [run_job(client).get_json()["name"].rsplit("/", 1)[1] for _ in range(3)]
    run_job(client, job="demo.fail", input={})
    for ident in ids[:2]:  # started as a worker starts them
        store.apply("demo", ident, Event.START, {record.START_TIME: now_micros()},
                    increment=(record.ATTEMPT,))
    store.apply("demo", ids[0], Event.SUCCEED, {record.RESPONSE: "1"})
    store.apply("demo", ids[2], Event.REQUEST_CANCEL)
    assert client.get(f"/v1/projects/demo/operations/{ids[0]}").status_code == 200
    found = samples(client)
    job = (("job", "demo.sleep"),)
    assert found[("opqueue_operations_created_total", job)] == 3
    assert found[("opqueue_operations_created_total", (("job", "demo.fail"),))] == 1
    assert found[("opqueue_operations_finished_total", (*job, ("state", "SUCCEEDED")))] == 1
    assert found[("opqueue_operations_finished_total", (*job, ("state", "CANCELLED")))] == 1
    assert found[("opqueue_operations", (*job, ("state", "RUNNING")))] == 1
    assert found[("opqueue_operations", (*job, ("state", "PENDING")))] == 0
    assert found[("opqueue_operations", (("job", "demo.fail"), ("state", "PENDING")))] == 1
    assert found[("opqueue_operation_run_seconds_count", job)] == 1
    assert found[("opqueue_operation_run_seconds_bucket", (*job, ("le", "+Inf")))] == 1
    assert found[("opqueue_operation_queue_wait_seconds_count", job)] == 2
    routes = {dict(labels).get("route") for name, labels in found
              if name == "opqueue_http_request_duration_seconds_count"}
    assert "/v1/projects/<project>/jobs/<job>:run" in routes
    get = (("code", "200"), ("method", "GET"),
           ("route", "/v1/projects/<project>/operations/<operation_id>"))
    assert found[("opqueue_http_request_duration_seconds_count", get)] >= 1


def test_deleting_an_unfinished_operation_leaves_the_gauge_right(client: FlaskClient) -> None:
    name = run_job(client).get_json()["name"]
    client.delete(f"/v1/{name}")
    found = samples(client)
    assert found[("opqueue_operations", (("job", "demo.sleep"), ("state", "PENDING")))] == 0


@pytest.mark.parametrize("form", ["json", "text"])
def test_log_lines_name_the_operation_in_scope(settings: Settings, form: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(replace(settings, log_format=form))
    try:
        with logs.operation_scope("projects/demo/operations/abc", "demo.sleep"):
            logging.getLogger("a.job").warning("halfway there")
        logging.getLogger("elsewhere").warning("unrelated")
    finally:
        logging.getLogger().handlers.clear()
    lines = capsys.readouterr().err.strip().splitlines()
    if form == "json":
        about, other = (json.loads(line) for line in lines)
        assert (about["operation"], about["job"], about["message"], about["level"]) == (
            "projects/demo/operations/abc", "demo.sleep", "halfway there", "WARNING")
        assert other["operation"] == ""
    else:
        assert "[projects/demo/operations/abc demo.sleep]: halfway there" in lines[0]
        assert lines[1].endswith("elsewhere: unrelated")
