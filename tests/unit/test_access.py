"""Secure by default (issue #13), fast: no keys means no access, anonymous mode only for
loopback hosts, JSON bodies only, a sliding rate window, refusals budgeted per address,
strict keys files, and caps on long requests that a dead process cannot leak."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.api_keys import KeyRing, Role, new_key
from app.long_requests import LongRequests
from core.config import Settings
from core.errors import ResourceExhausted
from core.keyspace import Keys
from tests.fakes import RecordingDispatcher

LIST = "/v1/projects/demo/operations"
RUN = "/v1/projects/demo/jobs/demo.sleep:run"


def build(settings: Settings, redis: fakeredis.FakeRedis, dispatcher: RecordingDispatcher,
          **changes: Any) -> Flask:
    return create_app(replace(settings, **changes), redis=redis,
                      dispatcher=dispatcher)  # type: ignore[arg-type]


def error_of(answer: Any) -> tuple[int, str]:
    body = answer.get_json()["error"]
    return answer.status_code, body["details"][0]["reason"]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The wall clock the limits read, set by the test."""
    now = [1_000_000.9]
    monkeypatch.setattr("app.rate_limiter.time.time", lambda: now[0])
    monkeypatch.setattr("app.long_requests.time.time", lambda: now[0])
    return now


@pytest.mark.parametrize("keys", ["", '{"keys": []}'])
def test_without_keys_nobody_is_served_not_even_loopback(
        settings: Settings, redis: fakeredis.FakeRedis, dispatcher: RecordingDispatcher,
        keys: str) -> None:
    # An empty list is a configuration admitting no one, whatever the switch says.
    anonymous = bool(keys)
    client = build(settings, redis, dispatcher, api_keys=keys,
                   insecure_allow_anonymous=anonymous).test_client()
    answer = client.get(LIST, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert answer.status_code == 401
    assert answer.get_json()["error"]["status"] == "UNAUTHENTICATED"
    if not keys:
        assert error_of(answer)[1] == "NO_API_KEYS_CONFIGURED"
        message = answer.get_json()["error"]["message"]
        assert "OPQUEUE_API_KEYS_FILE" in message
        assert "OPQUEUE_INSECURE_ALLOW_ANONYMOUS" in message
    assert client.get("/healthz").get_json() == {"status": "SERVING"}


def test_anonymous_mode_says_so_at_start_and_in_health(
        settings: Settings, redis: fakeredis.FakeRedis, dispatcher: RecordingDispatcher,
        capsys: pytest.CaptureFixture[str]) -> None:
    client = build(settings, redis, dispatcher).test_client()
    assert "WARNING app.access: ANONYMOUS ACCESS IS ON" in capsys.readouterr().err
    for probe in ("/healthz", "/readyz"):
        assert client.get(probe).get_json()["anonymousAccess"] is True
    assert client.get(LIST, environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200


@pytest.mark.parametrize(("headers", "allowed"), [
    ({"Host": "localhost:8000"}, True),
    ({"Host": "127.0.0.1:8000"}, True),
    ({"Host": "[::1]:8000"}, True),
    ({"Host": "app.localhost"}, True),
    ({"Host": "rebound.example:8000"}, False),
    ({"Host": "10.0.0.5:8000"}, False),
    ({"Host": "localhost", "Origin": "https://evil.example"}, False),
    ({"Host": "localhost", "Origin": "null"}, False),
    ({"Host": "localhost", "Origin": "http://localhost:8000"}, True),
])
def test_anonymous_mode_serves_only_loopback_hosts(client: FlaskClient,
                                                   redis: fakeredis.FakeRedis,
                                                   headers: dict[str, str],
                                                   allowed: bool) -> None:
    answer = client.post(RUN, json={"input": {"seconds": 1}}, headers=headers)
    if allowed:
        assert answer.status_code == 200
    else:
        assert error_of(answer)[0] == 403
        assert error_of(answer)[1] in {"HOST_NOT_LOOPBACK", "CROSS_SITE_REQUEST"}
        assert not redis.keys("*:op:*")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_a_body_must_be_sent_as_json(client: FlaskClient, redis: fakeredis.FakeRedis,
                                     content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post(RUN, data=json.dumps({"input": {"seconds": 1}}), headers=headers)
    assert error_of(answer) == (400, "UNSUPPORTED_MEDIA_TYPE")
    assert "application/json" in answer.get_json()["error"]["message"]
    assert not redis.keys("*:op:*")


def test_json_with_parameters_and_empty_cancels_still_work(client: FlaskClient) -> None:
    answer = client.post(RUN, data=json.dumps({"input": {"seconds": 1}}),
                         headers={"Content-Type": "application/json; charset=utf-8"})
    assert answer.status_code == 200
    cancel = f"/v1/{answer.get_json()['name']}:cancel"
    assert client.post(cancel, headers={"Content-Type": "application/json"}).status_code == 200
    assert client.post(cancel).status_code == 200  # no content type and no body


def test_the_rate_window_slides(settings: Settings, redis: fakeredis.FakeRedis,
                                dispatcher: RecordingDispatcher, clock: list[float]) -> None:
    key, entry = new_key("busy", Role.READER, ["demo"])
    client = build(settings, redis, dispatcher, api_keys=json.dumps(
        {"keys": [{**entry, "ratePerSecond": 3}]})).test_client()
    headers = {"x-goog-api-key": key}
    assert [client.get(LIST, headers=headers).status_code for _ in range(3)] == [200] * 3
    clock[0] += 0.2  # past a whole-second boundary, but not a second after those three
    refused = client.get(LIST, headers=headers)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    retry = refused.get_json()["error"]["details"][1]
    assert retry == {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                     "retryDelay": "0.800000000s"}
    clock[0] += 0.81
    assert client.get(LIST, headers=headers).status_code == 200


def test_refused_calls_count_against_the_address(settings: Settings, redis: fakeredis.FakeRedis,
                                                 dispatcher: RecordingDispatcher,
                                                 clock: list[float]) -> None:
    _, entry = new_key("someone", Role.READER, ["demo"])
    client = build(settings, redis, dispatcher, refused_per_second=2,
                   api_keys=json.dumps({"keys": [entry]})).test_client()
    guesser = {"REMOTE_ADDR": "192.0.2.9"}
    bad = {"x-goog-api-key": "opq_guess"}
    codes = [client.get(LIST, headers=bad, environ_base=guesser).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    assert client.get(LIST, environ_base=guesser).status_code == 429  # no key: refused too
    assert client.get(LIST, headers=bad,
                      environ_base={"REMOTE_ADDR": "192.0.2.10"}).status_code == 401
    clock[0] += 1.01
    assert client.get(LIST, headers=bad, environ_base=guesser).status_code == 401


def test_unavailable_says_retry_after(client: FlaskClient, redis: fakeredis.FakeRedis,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import redis as redis_py

    def down(*args: Any, **kwargs: Any) -> None:
        raise redis_py.ConnectionError("down")

    monkeypatch.setattr(redis, "hgetall", down)
    monkeypatch.setattr(redis, "evalsha", down)
    answer = client.get(f"{LIST}/00000000-0000-4000-8000-000000000000")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"


ENTRY = new_key("ci", Role.READER, ["demo"])[1]


@pytest.mark.parametrize(("entry", "complaint"), [
    ({**ENTRY, "projects": "demo"}, "projects: Not a valid list"),
    ({**ENTRY, "projects": []}, "projects"),
    ({**ENTRY, "projects": ["Not A Project"]}, "projects.0"),
    ({**ENTRY, "sha256": ENTRY["sha256"][:40]}, "sha256"),
    ({**ENTRY, "sha256": "opq_pasted-the-key-by-mistake"}, "sha256"),
    ({**ENTRY, "role": "admin"}, "role"),
    ({**ENTRY, "ratePerSecond": "3"}, "ratePerSecond"),
    ({**ENTRY, "rateperSecond": 3}, "rateperSecond: Unknown field"),
])
def test_a_loose_keys_entry_is_refused_by_name(entry: dict[str, Any], complaint: str) -> None:
    text = json.dumps({"keys": [new_key("fine", Role.READER, ["*"])[1], entry]})
    with pytest.raises(ValueError, match="API keys entry 1") as refused:
        KeyRing.parse(text)
    message = str(refused.value)
    assert "API keys entry 1 ('ci')" in message
    assert complaint in message
    assert ENTRY["sha256"][:16] not in message
    assert "opq_pasted" not in message


def test_a_keys_file_with_a_repeated_id_or_stray_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="used twice"):
        KeyRing.parse(json.dumps({"keys": [ENTRY, ENTRY]}))
    with pytest.raises(ValueError, match="nothing else"):
        KeyRing.parse(json.dumps({"keys": [ENTRY], "admins": []}))
    assert KeyRing.parse(json.dumps({"keys": [{**ENTRY, "projects": ["*"]}]})).keys


def long_requests(redis: fakeredis.FakeRedis, **caps: Any) -> LongRequests:
    settings = replace(Settings(key_prefix="t-long"), **caps)
    return LongRequests(redis, Keys(settings.key_prefix), settings)


def test_long_requests_are_capped_per_key_and_per_deployment(
        redis: fakeredis.FakeRedis, clock: list[float]) -> None:
    slots = long_requests(redis, max_long_requests_per_key=2, max_long_requests=3)
    first = slots.acquire("a")
    slots.acquire("a")
    with pytest.raises(ResourceExhausted) as per_key:
        slots.acquire("a")
    assert per_key.value.reason == "TOO_MANY_LONG_REQUESTS"
    assert per_key.value.retry_after
    assert "OPQUEUE_MAX_LONG_REQUESTS_PER_KEY" in per_key.value.message
    with slots.hold("b"), pytest.raises(ResourceExhausted,
                                        match="OPQUEUE_MAX_LONG_REQUESTS\\)"):
        slots.acquire("c")
    slots.release(first)
    with slots.hold("a"):  # released slots are free again at once
        pass


def test_a_slot_nobody_renews_frees_itself(redis: fakeredis.FakeRedis,
                                           clock: list[float]) -> None:
    # Another API process took the slot and was killed: it never releases or renews it.
    dead = long_requests(redis, max_long_requests_per_key=1, long_request_lease_seconds=30)
    dead.acquire("a")
    alive = long_requests(redis, max_long_requests_per_key=1, long_request_lease_seconds=30)
    with pytest.raises(ResourceExhausted):
        alive.acquire("a")
    clock[0] += 29
    alive.renew()  # renews only what this process holds
    with pytest.raises(ResourceExhausted):
        alive.acquire("a")
    clock[0] += 2
    with alive.hold("a"):
        pass


def test_held_slots_are_renewed(redis: fakeredis.FakeRedis, clock: list[float]) -> None:
    slots = long_requests(redis, max_long_requests_per_key=1, long_request_lease_seconds=30)
    other = long_requests(redis, max_long_requests_per_key=1, long_request_lease_seconds=30)
    with slots.hold("a"):
        clock[0] += 20
        slots.renew()
        clock[0] += 20  # past the first lease, within the renewed one
        with pytest.raises(ResourceExhausted):
            other.acquire("a")


def test_without_caps_long_requests_cost_no_redis_call(redis: fakeredis.FakeRedis) -> None:
    slots = long_requests(redis, max_long_requests_per_key=0, max_long_requests=0)
    with slots.hold("a"), slots.hold("a"):
        assert redis.keys("*") == []
