"""API keys, project isolation, roles and the rate limit (issue #7)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.api_keys import KeyRing, Role, new_key
from app.new_api_key import main
from core.config import Settings
from tests.fakes import RecordingDispatcher
from tests.keys import SECRET


@pytest.fixture
def client(keyed: Flask) -> FlaskClient:
    return keyed.test_client()


def as_(who: str | None) -> dict[str, str]:
    if who is None:
        return {}
    return {"Authorization": f"Bearer {SECRET.get(who, 'opq_not-a-real-key')}"}


def snapshot(redis: fakeredis.FakeRedis) -> dict[str, Any]:
    return {key: redis.dump(key) for key in redis.keys("*") if ":rate:" not in key}


@pytest.fixture
def existing(client: FlaskClient) -> str:
    answer = client.post("/v1/projects/demo/jobs/demo.sleep:run", headers=as_("owner"),
                         json={"input": {"seconds": 1}})
    assert answer.status_code == 200
    return str(answer.get_json()["name"]).rsplit("/", 1)[1]


Call = Callable[[FlaskClient, str, dict[str, str]], Any]
ROUTES: dict[str, tuple[Role, Call]] = {
    "list": (Role.READER, lambda c, i, h: c.get("/v1/projects/demo/operations", headers=h)),
    "get": (Role.READER, lambda c, i, h: c.get(f"/v1/projects/demo/operations/{i}", headers=h)),
    "wait": (Role.READER, lambda c, i, h: c.post(f"/v1/projects/demo/operations/{i}:wait",
                                                  json={"timeout": "0s"}, headers=h)),
    "cancel": (Role.SUBMITTER, lambda c, i, h: c.post(
        f"/v1/projects/demo/operations/{i}:cancel", headers=h)),
    "delete": (Role.SUBMITTER, lambda c, i, h: c.delete(f"/v1/projects/demo/operations/{i}",
                                                        headers=h)),
    "run": (Role.SUBMITTER, lambda c, i, h: c.post(
        "/v1/projects/demo/jobs/demo.sleep:run", json={"input": {"seconds": 1}}, headers=h)),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("who", "status", "code"), [
    (None, 401, "UNAUTHENTICATED"),
    ("forger", 401, "UNAUTHENTICATED"),
    ("stranger", 403, "PERMISSION_DENIED"),
])
def test_refused_callers_change_nothing(client: FlaskClient, redis: fakeredis.FakeRedis,
                                        existing: str, *, route: str, who: str | None,
                                        status: int, code: str) -> None:
    before = snapshot(redis)
    answer = ROUTES[route][1](client, existing, as_(who))
    assert (answer.status_code, answer.get_json()["error"]["status"]) == (status, code)
    assert snapshot(redis) == before


@pytest.mark.parametrize("route", ROUTES)
def test_a_reader_reads_but_may_not_change(client: FlaskClient, redis: fakeredis.FakeRedis,
                                           existing: str, route: str) -> None:
    needed, call = ROUTES[route]
    before = snapshot(redis)
    answer = call(client, existing, as_("viewer"))
    if needed is Role.READER:
        assert answer.status_code == 200
    else:
        assert answer.status_code == 403
        assert answer.get_json()["error"]["details"][0]["reason"] == "ROLE_NOT_ALLOWED"
        assert snapshot(redis) == before


@pytest.mark.parametrize("route", ROUTES)
def test_the_owner_may_do_everything(client: FlaskClient, existing: str, route: str) -> None:
    assert ROUTES[route][1](client, existing, as_("owner")).status_code == 200


@pytest.mark.parametrize("route", ["get", "cancel", "delete", "wait"])
def test_another_projects_key_cannot_probe_for_names(client: FlaskClient, existing: str,
                                                     route: str) -> None:
    call = ROUTES[route][1]
    real = call(client, existing, as_("stranger"))
    made_up = call(client, str(uuid.uuid4()), as_("stranger"))
    assert real.status_code == made_up.status_code == 403
    assert real.get_json() == made_up.get_json()


def test_google_clients_api_key_header_works(client: FlaskClient) -> None:
    answer = client.get("/v1/projects/demo/operations",
                        headers={"x-goog-api-key": SECRET["viewer"]})
    assert answer.status_code == 200


def test_job_types_need_a_key_but_no_project(client: FlaskClient) -> None:
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/v1/jobs", headers=as_("stranger")).status_code == 200


def test_health_needs_no_key(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200


def test_keys_are_rate_limited_with_retry_info(settings: Settings, redis: fakeredis.FakeRedis,
                                               dispatcher: RecordingDispatcher) -> None:
    key, entry = new_key("busy", Role.READER, ["demo"])
    app = create_app(replace(settings, api_keys=json.dumps(
        {"keys": [{**entry, "ratePerSecond": 3}]})), redis=redis,
        dispatcher=dispatcher)  # type: ignore[arg-type]
    client = app.test_client()
    answers = [client.get("/v1/projects/demo/operations", headers={"x-goog-api-key": key})
               for _ in range(6)]
    codes = [answer.status_code for answer in answers]
    assert codes.count(200) >= 3  # a window boundary may fall inside the loop
    limited = [answer for answer in answers if answer.status_code == 429]
    assert limited
    error = limited[0].get_json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert any(d["@type"].endswith("RetryInfo") for d in error["details"])


def test_keys_are_stored_as_digests_and_matched(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--id", "ci", "--role", "reader", "--project", "demo"])
    printed = capsys.readouterr().out
    key = printed.split("give it to the caller): ")[1].split()[0]
    entry = json.loads(printed.strip().splitlines()[-1])
    assert key not in json.dumps(entry)
    ring = KeyRing.parse(json.dumps({"keys": [entry]}))
    found = ring.identify(key)
    assert found is not None
    assert (found.id, found.role) == ("ci", Role.READER)
    assert ring.identify(key + "x") is None


def test_a_broken_keys_configuration_does_not_echo_it() -> None:
    with pytest.raises(ValueError, match="invalid") as raised:
        KeyRing.parse('{"keys": [{"id": "x", "sha256": "opq_secret-by-mistake"}]}')
    assert "opq_secret" not in str(raised.value)


def test_minting_a_key_from_the_command_line_warns_of_nothing() -> None:
    minted = subprocess.run([sys.executable, "-W", "error", "-m", "app.new_api_key",
                             "--id", "ci", "--project", "demo"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert (minted.returncode, minted.stderr) == (0, "")
    assert minted.stdout.startswith("key (shown once, give it to the caller): opq_")
