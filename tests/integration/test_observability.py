"""/metrics after a known set of jobs run by real workers, and JSON logs naming each
operation, from several API and Celery processes (#8)."""

from __future__ import annotations

import json
import uuid

from prometheus_client.parser import text_string_to_metric_families

from tests.stack import Api, Stack, open_gate

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(api: Api) -> Samples:
    answer = api.http.get(f"{api.base}/metrics", timeout=10)
    assert answer.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def test_metrics_count_a_known_set_of_jobs(api: Api, stack: Stack) -> None:
    before = scrape(api)
    for _ in range(3):
        api.wait(api.run("demo.sleep", {"seconds": 0})["name"])
    api.wait(api.run("demo.fail", {"code": "NOT_FOUND"})["name"])
    gate = uuid.uuid4().hex
    held = api.run("test.gate", {"gate": gate})["name"]
    api.state_becomes(held, "RUNNING")
    during = scrape(api)
    open_gate(stack, gate)
    api.wait(held)
    after = scrape(api)

    def grew(name: str, *labels: tuple[str, str], at: Samples = after) -> float:
        key = (name, tuple(sorted(labels)))
        return at.get(key, 0.0) - before.get(key, 0.0)

    sleep, fail, gated = ("job", "demo.sleep"), ("job", "demo.fail"), ("job", "test.gate")
    assert grew("opqueue_operations_created_total", sleep) == 3
    assert grew("opqueue_operations_finished_total", sleep, ("state", "SUCCEEDED")) == 3
    assert grew("opqueue_operations_finished_total", fail, ("state", "FAILED")) == 1
    assert grew("opqueue_operations", gated, ("state", "RUNNING"), at=during) == 1
    assert grew("opqueue_operations", gated, ("state", "RUNNING")) == 0
    assert grew("opqueue_operation_run_seconds_count", sleep) == 3
    assert grew("opqueue_operation_queue_wait_seconds_count", sleep) == 3
    # Latency of the API's own requests, summed over its worker processes.
    assert grew("opqueue_http_request_duration_seconds_count",
                ("route", "/v1/projects/<project>/operations/<operation_id>:wait"),
                ("method", "POST"), ("code", "200")) >= 5


def test_worker_logs_are_json_naming_the_operation_and_job(api: Api, stack: Stack) -> None:
    name = api.wait(api.run("demo.sleep", {"seconds": 0})["name"])["name"]
    lines = [json.loads(line) for node in ("w1", "w2")
             for line in stack.log(node).splitlines() if line.startswith("{")]
    about = [line for line in lines if line.get("operation") == name]
    assert {line["message"] for line in about} >= {f"succeeded {name}"}
    assert all(line["job"] == "demo.sleep" for line in about)


def test_an_expected_outcome_is_one_line_and_only_the_unexpected_has_a_traceback(
        api: Api, stack: Stack) -> None:
    expected = api.wait(api.run("demo.fail", {"code": "NOT_FOUND"})["name"])["name"]
    gate = uuid.uuid4().hex
    cancelled = api.run("test.steps", {"gate": gate, "steps": 2})["name"]
    api.state_becomes(cancelled, "RUNNING")
    api.http.post(f"{api.base}/v1/{cancelled}:cancel", json={}, timeout=10)
    open_gate(stack, gate)
    api.state_becomes(cancelled, "CANCELLED")
    unexpected = api.wait(api.run("demo.fail", {"unexpected": True})["name"])["name"]

    def about(name: str) -> list[dict[str, str]]:
        return [line for node in ("w1", "w2") for text in stack.log(node).splitlines()
                if text.startswith("{") and (line := json.loads(text)).get("operation") == name]

    for name in (expected, cancelled):
        assert {line["level"] for line in about(name)} <= {"INFO", "WARNING"}, about(name)
        assert not any("exc_info" in line for line in about(name))
    errors = [line for line in about(unexpected) if line["level"] == "ERROR"]
    assert errors
    assert any("RuntimeError" in line.get("exc_info", "") for line in errors)
