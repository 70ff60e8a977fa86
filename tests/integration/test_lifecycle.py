"""Issue #2's scenarios over real HTTP, against real Redis and real worker processes;
those taking `broker_api` run once per broker."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.stack import TOPOLOGIES, Api, Stack, open_gate

# Each test runs on one Redis and on a primary with replicas behind sentinels.
pytestmark = pytest.mark.parametrize("topology", TOPOLOGIES, indirect=True)


def test_a_job_runs_from_pending_through_running_to_succeeded(broker_api: Api) -> None:
    api = broker_api
    operation = api.run("demo.sleep", {"seconds": 0.3, "steps": 3})
    assert operation["done"] is False
    assert operation["metadata"]["state"] == "PENDING"
    done = api.wait(operation["name"])
    assert done["done"] is True
    assert done["response"] == {"@type": "type.googleapis.com/google.protobuf.Value",
                                "value": {"slept": 0.3, "steps": 3}}
    meta = done["metadata"]
    assert meta["state"] == "SUCCEEDED"
    assert meta["progressPercent"] == 100
    assert meta["attempt"] == 1
    assert meta["worker"].split("@")[0] in {"w1", "w2"}
    assert meta["createTime"] <= meta["startTime"] <= meta["endTime"]


def test_running_operations_show_start_worker_attempt_and_progress(
        broker_api: Api, broker_stack: Stack) -> None:
    api, stack = broker_api, broker_stack
    gate = uuid.uuid4().hex
    operation = api.run("test.steps", {"gate": gate, "steps": 4})
    running = api.state_becomes(operation["name"], "RUNNING")
    assert {"startTime", "worker", "attempt"} <= running["metadata"].keys()
    for step in (1, 2, 3):
        open_gate(stack, gate)
        seen = api.state_becomes(operation["name"], "RUNNING")
        seen = _progress_reaches(api, operation["name"], 25 * step)
        assert seen["metadata"]["statusMessage"] == f"step {step} of 4"
        assert seen["metadata"]["details"] == {"step": step}
        assert seen["done"] is False
    open_gate(stack, gate)
    assert api.wait(operation["name"])["response"]["value"] == {"steps": 4}


def _progress_reaches(api: Api, name: str, percent: int) -> dict[str, object]:
    from tests.stack import eventually

    return eventually(lambda: (op := api.get(name))["metadata"].get("progressPercent") == percent
                      and op, what=f"progress {percent}%")


def test_a_job_failing_with_a_chosen_code(broker_api: Api) -> None:
    api = broker_api
    operation = api.run("demo.fail", {"code": "FAILED_PRECONDITION", "message": "not ready"})
    done = api.wait(operation["name"])
    assert done["done"] is True
    assert "response" not in done
    assert done["error"]["code"] == 9
    assert done["error"]["message"] == "not ready"
    assert done["error"]["details"][0] == {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "DEMO_FAILURE",
        "domain": "opqueue", "metadata": {}}


def test_a_job_failing_unexpectedly_is_unknown_without_a_traceback(api: Api) -> None:
    operation = api.run("demo.fail", {"unexpected": True, "message": "internal detail"})
    done = api.wait(operation["name"])
    assert done["error"]["code"] == 2
    assert done["error"]["details"][0]["reason"] == "RUNTIME_ERROR"
    assert "internal detail" not in str(done)
    assert "Traceback" not in str(done)


def test_cpu_bound_job(api: Api) -> None:
    done = api.wait(api.run("demo.primes", {"below": 10_000, "chunks": 4})["name"])
    assert done["response"]["value"] == {"below": 10_000, "primes": 1229}


def test_listing_pages_newest_first(api: Api) -> None:
    names = [api.run("demo.sleep", {"seconds": 0, "steps": 1})["name"] for _ in range(5)]
    seen, token = [], ""
    while True:
        query = {"pageSize": "2", **({"pageToken": token} if token else {})}
        page = api.http.get(f"{api.base}/v1/projects/{api.project}/operations",
                            params=query, timeout=10).json()
        seen += [operation["name"] for operation in page["operations"]]
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert seen == names[::-1]
    bad = api.http.get(f"{api.base}/v1/projects/{api.project}/operations",
                       params={"pageToken": "x" + token}, timeout=10)
    assert bad.status_code == 400


def test_delete_forgets_the_record_but_the_job_still_runs(broker_api: Api,
                                                          broker_stack: Stack) -> None:
    api, stack = broker_api, broker_stack
    gate = uuid.uuid4().hex
    operation = api.run("test.gate", {"gate": gate})
    api.state_becomes(operation["name"], "RUNNING")
    assert api.http.delete(f"{api.base}/v1/{operation['name']}", timeout=10).json() == {}
    assert api.http.get(f"{api.base}/v1/{operation['name']}", timeout=10).status_code == 404
    # The job was not cancelled: it finishes, and finishing does not bring the record back.
    marker = api.run("test.gate", {"gate": gate})
    open_gate(stack, gate, times=2)
    api.wait(marker["name"])
    assert api.http.get(f"{api.base}/v1/{operation['name']}", timeout=10).status_code == 404
    listed = api.http.get(f"{api.base}/v1/projects/{api.project}/operations", timeout=10).json()
    assert [op["name"] for op in listed["operations"]] == [marker["name"]]


def test_invalid_input_queues_and_stores_nothing(api: Api, stack: Stack) -> None:
    answer = api.http.post(f"{api.base}/v1/projects/{api.project}/jobs/demo.sleep:run",
                           json={"input": {"seconds": "soon", "steps": 0}}, timeout=10)
    assert answer.status_code == 400
    fields = {v["field"] for d in answer.json()["error"]["details"]
              if "fieldViolations" in d for v in d["fieldViolations"]}
    assert fields == {"input.seconds", "input.steps"}
    store = stack.store()
    assert store.redis.zcard(store.keys.index(api.project)) == 0
    assert not list(store.redis.scan_iter(match=store.keys.operation(api.project, "*")))


def test_request_id_makes_submission_idempotent(api: Api) -> None:
    request_id = str(uuid.uuid4())
    first = api.run("demo.sleep", {"seconds": 0}, requestId=request_id)
    second = api.run("demo.sleep", {"seconds": 0}, requestId=request_id)
    assert second["name"] == first["name"]
    api.wait(first["name"])
    listed = api.http.get(f"{api.base}/v1/projects/{api.project}/operations", timeout=10).json()
    assert len(listed["operations"]) == 1


def test_errors_from_the_real_server_use_the_google_envelope(api: Api) -> None:
    base = f"{api.base}/v1/projects/{api.project}"
    cases = [
        (requests.Request("GET", f"{api.base}/nowhere"), 404),
        (requests.Request("PATCH", f"{base}/operations"), 404),
        (requests.Request("POST", f"{base}/jobs/demo.sleep:run", data=b"{nope",
                          headers={"Content-Type": "application/json"}), 400),
        (requests.Request("POST", f"{base}/jobs/demo.sleep:run", json={"inptu": {}}), 400),
        (requests.Request("POST", f"{base}/jobs/demo.sleep:run",
                          data=b'{"input": "' + b"x" * 2_000_000 + b'"}',
                          headers={"Content-Type": "application/json"}), 400),
        (requests.Request("GET", f"{base}/operations/..%2F..%2Fetc"), 404),
        (requests.Request("GET", f"{base}/operations/%00%20*"), 400),
        (requests.Request("GET", f"{api.base}/v1/projects/UPPER/operations"), 400),
    ]
    for request, status in cases:
        answer = api.http.send(request.prepare(), timeout=10)
        assert answer.status_code == status, (request.method, request.url, answer.text[:200])
        error = answer.json()["error"]
        assert error["code"] == status
        assert error["status"] in {"NOT_FOUND", "INVALID_ARGUMENT"}
        assert error["details"][0]["domain"] == "opqueue"


def test_health_and_readiness(api: Api) -> None:
    assert api.http.get(f"{api.base}/healthz", timeout=5).status_code == 200
    assert api.http.get(f"{api.base}/readyz", timeout=5).status_code == 200
