"""opqueue.client and the `opqueue` command without a server: parsing, error mapping, retries
and argument handling (the live API is tests/integration/test_cli.py's)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from core.codes import Code
from opqueue import client as client_module
from opqueue.cli import Exit, main
from opqueue.client import (
    BY_CODE,
    Cancelled,
    Client,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Operation,
    OpqueueError,
    Unavailable,
    Unknown,
    error_from_envelope,
    error_from_status,
)
from opqueue.errors import ERROR_INFO

NAME = "projects/demo/operations/0b0c8a4e-6f7e-4c3b-9d55-2f1e0a8b9c7d"
OP_ID = NAME.rsplit("/", 1)[1]
META = "type.googleapis.com/opqueue.v1.OperationMetadata"
SUCCEEDED = {
    "name": NAME, "done": True,
    "metadata": {"@type": META, "job": "demo.sleep", "state": "SUCCEEDED",
                 "createTime": "2026-11-21T17:41:11.448001Z",
                 "startTime": "2026-11-21T17:41:11.500000Z",
                 "updateTime": "2026-11-21T17:41:14.512345Z",
                 "endTime": "2026-11-21T17:41:14.512345Z", "progressPercent": 100,
                 "statusMessage": "step 6 of 6", "details": {"step": 6}, "attempt": 1,
                 "worker": "celery@host1", "labels": {"team": "ml"}},
    "response": {"@type": "type.googleapis.com/google.protobuf.Value",
                 "value": {"slept": 3.0, "steps": 6}},
}


def failed(code: Code, message: str = "no such thing") -> dict[str, Any]:
    """A done operation that failed with `code`."""
    info = {"@type": ERROR_INFO, "reason": "DEMO_FAILURE", "domain": "opqueue"}
    return {"name": NAME, "done": True,
            "metadata": {"job": "demo.fail", "state": "FAILED"},
            "error": {"code": int(code), "message": message, "details": [info]}}


def envelope(http: int, status: str | None, reason: str = "SOME_REASON") -> dict[str, Any]:
    """Google's HTTP error envelope."""
    error: dict[str, Any] = {"code": http, "message": "refused",
                             "details": [{"@type": ERROR_INFO, "reason": reason,
                                          "domain": "opqueue"}]}
    if status:
        error["status"] = status
    return {"error": error}


# Errors: one table, from the envelope and from a Status alike.

@pytest.mark.parametrize(("http", "status", "expected"), [
    (404, "NOT_FOUND", NotFound),
    (400, "INVALID_ARGUMENT", InvalidArgument),
    (400, "FAILED_PRECONDITION", FailedPrecondition),  # the status name decides, not HTTP
    (503, "UNAVAILABLE", Unavailable),
    (401, "UNAUTHENTICATED", client_module.Unauthenticated),
    (403, "PERMISSION_DENIED", client_module.PermissionDenied),
    (429, "RESOURCE_EXHAUSTED", client_module.ResourceExhausted),
    (409, "ABORTED", client_module.Aborted),
    (500, "INTERNAL", client_module.Internal),
])
def test_an_envelope_becomes_the_class_of_its_status(
        http: int, status: str, expected: type[OpqueueError]) -> None:
    error = error_from_envelope(envelope(http, status), http)
    assert type(error) is expected
    assert (error.status, error.code, error.http_status) == (status, Code[status], http)
    assert (error.message, error.reason) == ("refused", "SOME_REASON")
    assert error.details[0]["@type"] == ERROR_INFO
    assert str(error) == f"{status}: refused"


@pytest.mark.parametrize(("http", "body", "expected"), [
    (404, envelope(404, None), NotFound),          # no status name: the HTTP status decides
    (400, None, InvalidArgument),                  # not JSON at all (a proxy's HTML page)
    (504, {"unexpected": True}, DeadlineExceeded),
    (502, None, Unknown),
])
def test_an_answer_without_a_status_name_falls_back_to_its_http_status(
        http: int, body: Any, expected: type[OpqueueError]) -> None:
    error = error_from_envelope(body, http)
    assert type(error) is expected
    assert error.http_status == http


@pytest.mark.parametrize("code", [code for code in Code if code is not Code.OK])
def test_every_status_code_has_its_own_class(code: Code) -> None:
    error = error_from_status({"code": int(code), "message": "m"})
    assert type(error) is BY_CODE[code]
    assert (error.code, error.status, error.http_status) == (code, code.name, None)
    # Named after the code, as google.api_core.exceptions names them.
    assert type(error).__name__ == "".join(part.title() for part in code.name.split("_"))


def test_an_unknown_status_code_is_unknown() -> None:
    assert type(error_from_status({"code": 99, "message": "?"})) is Unknown


# Operation JSON → dataclass.

def test_a_succeeded_operation_parses_into_attributes() -> None:
    operation = Operation.from_json(SUCCEEDED)
    assert (operation.name, operation.id, operation.done) == (NAME, OP_ID, True)
    assert (operation.job, operation.state, operation.progress_percent) == (
        "demo.sleep", "SUCCEEDED", 100)
    assert (operation.status_message, operation.attempt, operation.worker) == (
        "step 6 of 6", 1, "celery@host1")
    assert operation.details == {"step": 6}
    assert operation.labels == {"team": "ml"}
    assert operation.create_time == datetime(2026, 11, 21, 17, 41, 11, 448001, tzinfo=UTC)
    assert operation.end_time == datetime(2026, 11, 21, 17, 41, 14, 512345, tzinfo=UTC)
    assert operation.response == {"slept": 3.0, "steps": 6}
    assert operation.error is None
    assert operation.result() == {"slept": 3.0, "steps": 6}
    assert operation.raw == SUCCEEDED


def test_fields_left_out_at_their_default_get_the_default() -> None:
    operation = Operation.from_json({"name": NAME, "metadata": {"job": "demo.sleep",
                                                                "state": "PENDING"}})
    assert operation.done is False
    assert (operation.progress_percent, operation.status_message, operation.attempt) == (
        0, "", 0)
    assert operation.start_time is None
    assert operation.end_time is None
    assert operation.response is None
    assert operation.error is None


@pytest.mark.parametrize(("code", "expected"), [
    (Code.NOT_FOUND, NotFound), (Code.CANCELLED, Cancelled), (Code.UNKNOWN, Unknown)])
def test_result_raises_the_class_of_the_operations_error(
        code: Code, expected: type[OpqueueError]) -> None:
    operation = Operation.from_json(failed(code))
    assert operation.error is not None
    assert operation.error.code == code
    with pytest.raises(expected) as raised:
        operation.result()
    assert (raised.value.message, raised.value.reason) == ("no such thing", "DEMO_FAILURE")


class LongPolls:
    """A client whose WaitOperation takes its whole timeout (on a fake clock) and ends
    the operation after `answers` calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: int) -> None:
        self.now = 0.0
        self.timeouts: list[float | None] = []
        self.answers = answers
        monkeypatch.setattr("opqueue.client.monotonic", lambda: self.now)

    def wait(self, name: str, timeout: float | None = None) -> Operation:
        self.timeouts.append(timeout)
        self.now += 3.0 if timeout is None else min(timeout, 3.0)  # the server's cap: 3 s
        done = len(self.timeouts) >= self.answers
        return Operation.from_json(SUCCEEDED if done else {"name": name})


def test_result_long_polls_until_done(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = LongPolls(monkeypatch, answers=3)
    operation = Operation(NAME, client=waits)  # type: ignore[arg-type]
    assert operation.result(timeout=60) == {"slept": 3.0, "steps": 6}
    assert waits.timeouts == [60, 57, 54]  # each wait asks for what is left


def test_result_gives_up_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = LongPolls(monkeypatch, answers=100)
    with pytest.raises(TimeoutError):
        Operation(NAME, client=waits).result(timeout=5)  # type: ignore[arg-type]
    assert waits.timeouts == [5, 2]


# Client plumbing: names, durations, headers, retries.

def test_a_bare_id_is_completed_with_the_clients_project() -> None:
    assert Client("http://x", project="p1").operation_name(OP_ID) == (
        f"projects/p1/operations/{OP_ID}")
    assert Client("http://x", project="p1").operation_name(NAME) == NAME
    with pytest.raises(ValueError, match="no project"):
        Client("http://x").operation_name(OP_ID)


@pytest.mark.parametrize(("value", "text"), [(30, "30s"), (1.5, "1.5s"), (0, "0s"),
                                             (0.0000004, "0s"), ("2.5s", "2.5s")])
def test_durations(value: float | str, text: str) -> None:
    assert client_module.duration(value) == text


def test_the_api_key_is_sent_as_a_bearer_token() -> None:
    assert Client("http://x", api_key="k1").session.headers["Authorization"] == "Bearer k1"
    assert "Authorization" not in Client("http://x").session.headers


def answer(status: int, body: Any) -> requests.Response:
    """A `requests.Response` as the server would send it."""
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the session is asked to send; each call takes the next scripted outcome."""
    script: list[Any] = []
    monkeypatch.setattr("opqueue.client.sleep", lambda _: None)

    def request(self: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
        outcome = script.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(requests.Session, "request", request)
    return script


def test_an_idempotent_call_is_retried_once_after_a_connection_error_or_503(
        sent: list[Any]) -> None:
    sent.extend([requests.ConnectionError("refused"), answer(200, SUCCEEDED)])
    assert Client("http://x").get(NAME).done
    sent.extend([answer(503, envelope(503, "UNAVAILABLE")), answer(200, SUCCEEDED)])
    assert Client("http://x").wait(NAME, 1).done
    sent.extend([answer(503, envelope(503, "UNAVAILABLE"))] * 2)
    with pytest.raises(Unavailable):
        Client("http://x").get(NAME)


def test_a_delete_is_not_retried(sent: list[Any]) -> None:
    sent.extend([requests.ConnectionError("refused"), answer(200, {})])
    with pytest.raises(Unavailable, match="cannot reach http://x"):
        Client("http://x").delete(NAME)
    assert len(sent) == 1  # the second outcome was never asked for


def test_a_read_timeout_is_deadline_exceeded(sent: list[Any]) -> None:
    sent.append(requests.ReadTimeout("slow"))
    with pytest.raises(DeadlineExceeded):
        Client("http://x").get(NAME)


# The command's argument handling, against a fake API.

class FakeApi:
    """Stands in for `Client._call`: records each call, answers from `routes`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any] | None]] = []
        self.routes: dict[tuple[str, str], Any] = {}

    def call(self, method: str, path: str, *, json: Any = None, **_: Any) -> dict[str, Any]:
        self.calls.append((method, path, json))
        found = self.routes.get((method, path.rsplit("/", 1)[-1]), {})
        if isinstance(found, Exception):
            raise found
        return dict(found)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(Client, "_call", lambda _, *args, **kwargs: fake.call(*args, **kwargs))
    return fake


def opqueue(*args: str, stdin: str | None = None, **env: str) -> Result:
    """Run the command in-process, with none of the developer's OPQUEUE_* settings."""
    clean: dict[str, str | None] = {"OPQUEUE_URL": None, "OPQUEUE_PROJECT": None,
                                    "OPQUEUE_API_KEY": None, **env}
    return CliRunner(env=clean).invoke(main, list(args), input=stdin)


@pytest.mark.parametrize(("given", "message"), [
    ('{"seconds": 1', "--input is not valid JSON: Expecting ',' delimiter"),
    ("[1, 2]", "--input must be a JSON object"),
    ("@/no/such/file.json", "cannot read --input file /no/such/file.json"),
])
def test_bad_input_is_one_line_and_exit_2(api: FakeApi, given: str, message: str) -> None:
    result = opqueue("run", "demo.sleep", "--input", given)
    assert result.exit_code == Exit.USAGE
    assert result.stderr.startswith(f"Error: {message}")
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
    assert api.calls == []  # nothing was sent


def test_input_from_a_file_and_from_stdin(api: FakeApi, tmp_path: Path) -> None:
    api.routes["POST", "demo.sleep:run"] = {"name": NAME}
    path = tmp_path / "input.json"
    path.write_text('{"seconds": 2, "steps": 4}')
    result = opqueue("run", "demo.sleep", "--input", f"@{path}", "--label", "team=ml",
                     "--timeout", "30")
    assert (result.exit_code, result.stdout) == (0, NAME + "\n")
    method, url, body = api.calls[0]
    assert (method, url) == ("POST", "/v1/projects/demo/jobs/demo.sleep:run")
    assert body is not None
    assert (body["input"], body["labels"], body["timeout"]) == (
        {"seconds": 2, "steps": 4}, {"team": "ml"}, "30s")
    assert opqueue("run", "demo.sleep", "--input", "@-", stdin='{"seconds": 5}').exit_code == 0
    assert api.calls[1][2] is not None
    assert api.calls[1][2]["input"] == {"seconds": 5}


def test_a_label_without_a_value_is_a_usage_error(api: FakeApi) -> None:
    result = opqueue("run", "demo.sleep", "--label", "team")
    assert (result.exit_code, result.stderr) == (
        Exit.USAGE, "Error: --label must be KEY=VALUE, not 'team'\n")


@pytest.mark.parametrize(("args", "env", "path"), [
    (("get", OP_ID), {}, f"/v1/projects/demo/operations/{OP_ID}"),
    (("--project", "p1", "get", OP_ID), {}, f"/v1/projects/p1/operations/{OP_ID}"),
    (("get", OP_ID), {"OPQUEUE_PROJECT": "p2"}, f"/v1/projects/p2/operations/{OP_ID}"),
    (("--project", "p1", "get", NAME), {}, f"/v1/{NAME}"),
    (("cancel", OP_ID), {}, f"/v1/projects/demo/operations/{OP_ID}:cancel"),
    (("delete", OP_ID), {}, f"/v1/projects/demo/operations/{OP_ID}"),
])
def test_a_bare_operation_id_gets_the_project(api: FakeApi, args: tuple[str, ...],
                                              env: dict[str, str], path: str) -> None:
    api.routes["GET", OP_ID] = {"name": NAME}
    result = opqueue(*args, **env)
    assert result.exit_code == 0, result.output
    assert api.calls[0][1] == path


@pytest.mark.parametrize(("operation", "exit_code", "stdout", "stderr"), [
    (SUCCEEDED, Exit.OK, '{"slept": 3.0, "steps": 6}\n', ""),
    (failed(Code.NOT_FOUND), Exit.FAILED, "", "NOT_FOUND: no such thing\n"),
    (failed(Code.CANCELLED, "cancelled"), Exit.CANCELLED, "", "CANCELLED: cancelled\n"),
])
def test_wait_exits_with_the_outcome(api: FakeApi, operation: dict[str, Any], exit_code: int,
                                     stdout: str, stderr: str) -> None:
    api.routes["GET", OP_ID] = operation
    result = opqueue("wait", OP_ID)
    assert (result.exit_code, result.stdout) == (exit_code, stdout)
    assert result.stderr.endswith(stderr)


@pytest.mark.parametrize(("error", "exit_code"), [
    (NotFound("operation x not found"), Exit.REFUSED),
    (InvalidArgument("bad name"), Exit.REFUSED),
    (Unavailable("cannot reach http://x"), Exit.UNREACHABLE),
])
def test_a_refused_call_is_one_line_and_its_exit_code(api: FakeApi, error: OpqueueError,
                                                      exit_code: int) -> None:
    api.routes["GET", OP_ID] = error
    result = opqueue("get", OP_ID)
    assert (result.exit_code, result.stderr) == (exit_code, f"{error}\n")


def test_help_documents_the_exit_codes() -> None:
    for args in ((), ("run",), ("wait",)):
        shown = opqueue(*args, "--help").stdout
        assert "Exit codes:" in shown
        assert all(f"  {int(code):<4} " in shown for code in Exit)
