""":batchRun over real HTTP, against real Redis and real Celery workers."""

from __future__ import annotations

import uuid

from tests.stack import Api


def test_a_batch_runs_every_job_and_answers_in_order(api: Api) -> None:
    url = f"{api.base}/v1/projects/{api.project}/jobs/demo.sleep:batchRun"
    request_ids = [str(uuid.uuid4()) for _ in range(20)]
    body = {"requests": [{"input": {"seconds": 0, "steps": 1}, "requestId": request_id,
                          "labels": {"n": str(n)}} for n, request_id in enumerate(request_ids)]}
    answer = api.http.post(url, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    operations = answer.json()["operations"]
    assert [op["metadata"]["labels"]["n"] for op in operations] == [str(n) for n in range(20)]
    for operation in operations:
        done = api.wait(operation["name"])
        assert done["metadata"]["state"] == "SUCCEEDED"
        assert done["response"]["value"] == {"slept": 0.0, "steps": 1}
    again = api.http.post(url, json=body, timeout=30).json()["operations"]
    assert [op["name"] for op in again] == [op["name"] for op in operations]
    assert all(op["done"] for op in again)
    listed = api.http.get(f"{api.base}/v1/projects/{api.project}/operations",
                          params={"pageSize": 100}, timeout=10).json()["operations"]
    assert sorted(op["name"] for op in listed) == sorted(op["name"] for op in operations)


def test_a_batch_with_one_bad_input_queues_nothing(api: Api) -> None:
    url = f"{api.base}/v1/projects/{api.project}/jobs/demo.sleep:batchRun"
    answer = api.http.post(url, json={"requests": [{"input": {"seconds": 0}},
                                                   {"input": {"seconds": "soon"}}]},
                           timeout=30)
    assert answer.status_code == 400
    fields = [v["field"] for d in answer.json()["error"]["details"]
              if d["@type"].endswith("BadRequest") for v in d["fieldViolations"]]
    assert fields == ["requests[1].input.seconds"]
    listed = api.http.get(f"{api.base}/v1/projects/{api.project}/operations",
                          timeout=10).json()
    assert listed == {"operations": []}
