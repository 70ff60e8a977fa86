"""Secure by default (issue #13) against the real server and workers: no keys means no
access, anonymous mode only for local pages and hosts, webhooks that reach only what was
checked, JSON even for the HTTP server's own refusals, and a strict keys file. (The caps on
long requests and the refusal budget are in test_security.py, on its keyed stack.)"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from app.api_keys import Role, new_key
from core.embedded_redis import free_port
from tests.receiver import Misbehaving
from tests.stack import ROOT, Api, Stack, eventually, procfile_command, running_stack

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def reason(answer: requests.Response) -> str:
    found: str = answer.json()["error"]["details"][0]["reason"]
    return found


# 1. No keys configured is not "open to anything on loopback".

@pytest.fixture(scope="module", params=["no keys, switch off", "an empty keys list"])
def keyless_stack(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = ({"OPQUEUE_INSECURE_ALLOW_ANONYMOUS": "false"} if request.param.startswith("no")
           else {"OPQUEUE_API_KEYS": '{"keys": []}'})  # the switch stays on: it is ignored
    with running_stack(tmp_path_factory.mktemp("keyless"), workers=(), **env) as stack:
        yield stack


def test_without_keys_loopback_callers_are_not_served(keyless_stack: Stack) -> None:
    base = keyless_stack.base_url
    listed = requests.get(f"{base}/v1/projects/demo/operations", timeout=10)
    run = requests.post(f"{base}/v1/projects/demo/jobs/demo.sleep:run",
                        json={"input": {"seconds": 0}}, timeout=10)
    for answer in (listed, run):
        assert answer.status_code == 401
        assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    if "OPQUEUE_API_KEYS" not in keyless_stack.extra_env:
        assert reason(listed) == "NO_API_KEYS_CONFIGURED"
        assert "OPQUEUE_INSECURE_ALLOW_ANONYMOUS" in listed.json()["error"]["message"]
    assert requests.get(f"{base}/readyz", timeout=10).json() == {"status": "SERVING"}
    assert "ANONYMOUS ACCESS IS ON" not in keyless_stack.log("web")


def test_anonymous_mode_is_announced_in_the_log_and_health(stack: Stack) -> None:
    assert "ANONYMOUS ACCESS IS ON" in stack.log("web")
    health = requests.get(f"{stack.base_url}/readyz", timeout=10).json()
    assert health["anonymousAccess"] is True


# 2. Browsers cannot drive a development instance.

def test_a_body_that_is_not_declared_json_is_refused_and_stores_nothing(api: Api) -> None:
    run = f"{api.base}/v1/projects/{api.project}/jobs/demo.sleep:run"
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        answer = api.http.post(run, data=json.dumps({"input": {"seconds": 0}}),
                               headers={"Content-Type": content_type}, timeout=10)
        assert answer.status_code == 400
        assert reason(answer) == "UNSUPPORTED_MEDIA_TYPE"
    listed = api.http.get(f"{api.base}/v1/projects/{api.project}/operations", timeout=10)
    assert listed.json() == {"operations": []}


def test_empty_cancels_work_with_a_json_type_or_none(api: Api) -> None:
    name = api.run("demo.sleep", {"seconds": 0})["name"]
    cancel = f"{api.base}/v1/{name}:cancel"
    assert api.http.post(cancel, headers={"Content-Type": "application/json"},
                         timeout=10).status_code == 200
    bare = requests.Request("POST", cancel).prepare()
    assert "Content-Type" not in bare.headers
    assert api.http.send(bare, timeout=10).status_code == 200


def test_anonymous_mode_refuses_other_hosts_and_sites(api: Api) -> None:
    run = f"{api.base}/v1/projects/{api.project}/jobs/demo.sleep:run"
    body = {"input": {"seconds": 0}}
    rebound = api.http.post(run, json=body, headers={"Host": "rebound.example:8000"},
                            timeout=10)
    assert (rebound.status_code, reason(rebound)) == (403, "HOST_NOT_LOOPBACK")
    cross = api.http.post(run, json=body, headers={"Origin": "https://evil.example"},
                          timeout=10)
    assert (cross.status_code, reason(cross)) == (403, "CROSS_SITE_REQUEST")
    listed = api.http.get(f"{api.base}/v1/projects/{api.project}/operations", timeout=10)
    assert listed.json() == {"operations": []}


# 3. (The caps at their defaults are in test_security.py.) A killed process leaks no slot.

def test_slots_held_by_a_killed_api_process_free_themselves(tmp_path: Path) -> None:
    env = {"OPQUEUE_WEB_PROCESSES": "1", "OPQUEUE_MAX_LONG_REQUESTS_PER_KEY": "2",
           "OPQUEUE_LONG_REQUEST_LEASE_SECONDS": "2"}
    with running_stack(tmp_path, workers=(), **env) as stack:
        watch = f"{stack.base_url}/v1/projects/demo/operations:watch"
        held = [requests.get(watch, stream=True, timeout=30) for _ in range(2)]
        try:
            assert [answer.status_code for answer in held] == [200, 200]
            with requests.get(watch, stream=True, timeout=30) as refused:
                assert refused.status_code == 429
            [worker] = psutil.Process(stack.processes["web"].pid).children()
            worker.kill()  # it never releases its two slots; Granian starts another
            worker.wait(timeout=30)
        finally:
            for answer in held:
                answer.close()

        def a_watch_is_served() -> bool:
            try:
                with requests.get(watch, stream=True, timeout=30) as answer:
                    return answer.status_code == 200
            except requests.ConnectionError:  # the new worker is still starting
                return False

        eventually(a_watch_is_served, what="the dead process's slots to expire")


# 4. Webhooks reach only what was checked.

@pytest.mark.parametrize("host", ["[::127.0.0.1]", "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::1]",
                                  "224.0.0.1", "[::ffff:10.0.0.1]"])
def test_addresses_that_embed_or_are_no_public_unicast_address_are_refused(
        api: Api, host: str) -> None:
    # The session stack may reach 127.0.0.0/8: what a 6to4 or NAT64 relay reaches is not that.
    answer = api.http.post(f"{api.base}/v1/projects/{api.project}/jobs/demo.sleep:run",
                           json={"input": {"seconds": 0},
                                 "notify": {"url": f"http://{host}:8080/hook"}}, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["details"][-1]["fieldViolations"][0]["field"] == "notify.url"


def deliveries(api: Api, name: str) -> list[dict[str, Any]]:
    answer = api.http.get(f"{api.base}/v1/{name}/webhookDeliveries", timeout=10)
    found: list[dict[str, Any]] = answer.json()["deliveries"]
    return found


def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_deadline(api: Api) -> None:
    with Misbehaving(b"HTTP/1.1 200 OK\r\n", drip=b"X-Slow: " + b"z" * 2000) as receiver:
        name = api.run("demo.sleep", {"seconds": 0},
                       notify={"url": receiver.url("/drip")})["name"]
        first = eventually(lambda: deliveries(api, name), timeout=60,
                           what="the dripping delivery to be given up")[0]
    assert first["outcome"] == "retrying"
    assert "no answer within" in first["error"]


def test_a_receiver_answer_is_not_read_past_its_status_and_urls_are_shown_redacted(
        api: Api) -> None:
    endless = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n" + b"x" * 65536
    with Misbehaving(endless) as receiver:
        url, shown = receiver.url("/hook?token=s3cret"), receiver.url("/hook?…")
        name = api.run("demo.sleep", {"seconds": 0}, notify={"url": url})["name"]
        log = eventually(lambda: deliveries(api, name), timeout=60, what="the delivery")
    assert [(entry["status"], entry["outcome"]) for entry in log] == [(200, "delivered")]
    assert log[0]["url"] == shown
    assert "s3cret" not in json.dumps(log)


# 5. The server's own refusals, and a strict keys file.

def raw_exchange(stack: Stack, request: bytes) -> tuple[int, bytes, bytes]:
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.lower(), body


@pytest.mark.parametrize(("request_bytes", "expected"), [
    (b"GET /v1/projects/demo/operations?filter=" + b"a" * 5000 + b" HTTP/1.1\r\n"
     b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n", "REQUEST_LINE_TOO_LONG"),
    (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"v" * 9000
     + b"\r\nConnection: close\r\n\r\n", "REQUEST_HEADERS_TOO_LARGE"),
])
def test_a_request_head_over_its_limits_is_refused_with_the_google_envelope(
        stack: Stack, request_bytes: bytes, expected: str) -> None:
    status, head, body = raw_exchange(stack, request_bytes)
    assert status == 400
    assert b"content-type: application/json" in head
    error = json.loads(body)["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["reason"] == expected


@pytest.mark.parametrize(("request_bytes", "expected"), [
    (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(
        b"X-H%d: v\r\n" % n for n in range(150)) + b"\r\n", 431),
    (b"NOT HTTP AT ALL\r\n\r\n", 400),
])
def test_what_the_http_server_cannot_parse_it_refuses_itself_and_closes(
        stack: Stack, request_bytes: bytes, expected: int) -> None:
    # Granian refuses these before the app runs, with an empty body (README, Limits).
    status, head, body = raw_exchange(stack, request_bytes)
    assert (status, body) == (expected, b"")
    assert b"connection: close" in head


def test_a_loose_keys_file_stops_the_server_naming_the_entry(stack: Stack,
                                                             tmp_path: Path) -> None:
    _, entry = new_key("ci-bot", Role.READER, ["demo"])
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": [{**entry, "projects": "demo"}]}))
    broken = Stack(stack.redis_url, tmp_path, {"OPQUEUE_API_KEYS_FILE": str(keys)},
                   port=free_port())
    try:
        with (tmp_path / "web.log").open("ab") as out:
            broken.processes["web"] = subprocess.Popen(
                procfile_command("web"), cwd=ROOT, env=broken.env, stdout=out,
                stderr=subprocess.STDOUT)
        assert broken.processes["web"].wait(timeout=60) != 0
    finally:
        broken.close()
    log = broken.log("web")
    assert "API keys entry 0 ('ci-bot') is invalid: projects: Not a valid list" in log
    assert entry["sha256"] not in log
