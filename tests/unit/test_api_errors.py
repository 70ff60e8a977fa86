import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from core.store import OperationStore
from tests.fakes import RecordingDispatcher

RUN = "/v1/projects/demo/jobs/demo.sleep:run"


def assert_envelope(answer: object, status: int, code: str) -> dict[str, object]:
    body = answer.get_json()  # type: ignore[attr-defined]
    assert answer.status_code == status  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    error = body["error"]
    assert (error["code"], error["status"]) == (status, code)
    assert error["message"]
    assert error["details"][0]["domain"] == "opqueue"
    assert "Traceback" not in answer.get_data(as_text=True)  # type: ignore[attr-defined]
    return error  # type: ignore[no-any-return]


def test_unknown_route(client: FlaskClient) -> None:
    assert_envelope(client.get("/v2/nothing"), 404, "NOT_FOUND")


def test_wrong_method(client: FlaskClient) -> None:
    answer = client.put("/v1/jobs")
    assert_envelope(answer, 404, "NOT_FOUND")
    assert answer.headers["Allow"]


def test_malformed_json(client: FlaskClient) -> None:
    answer = client.post(RUN, data=b'{"input": ', content_type="application/json")
    assert "not valid JSON" in str(assert_envelope(answer, 400, "INVALID_ARGUMENT")["message"])


def test_invalid_utf8(client: FlaskClient) -> None:
    answer = client.post(RUN, data=b'{"input": "\xff"}', content_type="application/json")
    assert_envelope(answer, 400, "INVALID_ARGUMENT")


def test_a_body_that_is_not_an_object(client: FlaskClient) -> None:
    assert_envelope(client.post(RUN, json=[1, 2]), 400, "INVALID_ARGUMENT")


def test_oversize_body(client: FlaskClient, settings: object) -> None:
    huge = b'{"input": {"seconds": 1, "pad": "' + b"x" * 70_000 + b'"}}'
    answer = client.post(RUN, data=huge, content_type="application/json")
    assert_envelope(answer, 400, "INVALID_ARGUMENT")


def test_redis_outage_is_unavailable_with_retry_info(client: FlaskClient,
                                                     store: OperationStore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise redis.ConnectionError("connection refused to redis://:secret@host")

    monkeypatch.setattr(store.redis, "hgetall", down)
    answer = client.get("/v1/projects/demo/operations/6f1c0a5e-0000-4000-8000-000000000000")
    error = assert_envelope(answer, 503, "UNAVAILABLE")
    assert any(str(d["@type"]).endswith("RetryInfo") for d in error["details"])  # type: ignore[attr-defined]
    assert "secret" not in answer.get_data(as_text=True)


def test_an_unexpected_error_is_internal_without_internals(app: Flask, client: FlaskClient,
                                                           store: OperationStore,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("secret internals")

    monkeypatch.setattr(store, "list_page", broken)
    answer = client.get("/v1/projects/demo/operations")
    assert_envelope(answer, 500, "INTERNAL")
    assert "secret internals" not in answer.get_data(as_text=True)


def test_health_and_readiness(client: FlaskClient, dispatcher: RecordingDispatcher) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    dispatcher.broken = True
    error = assert_envelope(client.get("/readyz"), 503, "UNAVAILABLE")
    assert "broker" in str(error["message"])
