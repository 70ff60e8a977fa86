"""A small typed client of opqueue's HTTP API: run jobs, then follow their operations.

    client = Client("http://127.0.0.1:8000", project="demo")
    value = client.submit("demo.sleep", {"seconds": 1}).result(timeout=60)

Every failure raises an `OpqueueError` leaf named after its `google.rpc.Code`
(`opqueue.errors`, re-exported here).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from time import monotonic, sleep
from typing import Any
from urllib.parse import quote

import requests

from opqueue.codes import Code
from opqueue.errors import (
    BY_CODE,
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    Json,
    NotFound,
    OpqueueError,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    error_from_envelope,
    error_from_status,
)

# The errors are re-exported, so `from opqueue.client import NotFound` works (mypy too).
__all__ = [
    "BY_CODE", "Aborted", "AlreadyExists", "Cancelled", "Client", "DataLoss",
    "DeadlineExceeded", "FailedPrecondition", "Internal", "InvalidArgument", "NotFound",
    "Operation", "OpqueueError", "OutOfRange", "PermissionDenied", "ResourceExhausted",
    "Status", "Unauthenticated", "Unavailable", "Unimplemented", "Unknown",
    "error_from_envelope", "error_from_status",
]

USER_AGENT = "opqueue-client/0.1"
RETRY_BACKOFF_SECONDS = 0.25
# A wait without a timeout lasts the server's cap (OPQUEUE_MAX_WAIT_SECONDS, default 60 s);
# its HTTP read timeout allows for that on top of the client's own timeout.
DEFAULT_WAIT_CAP_SECONDS = 60.0


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp (`2026-11-21T17:41:11.448001Z`) as an aware datetime."""
    return datetime.fromisoformat(text) if text else None


def duration(value: float | str) -> str:
    """Seconds as a protobuf Duration string (`1.5` → `1.5s`); strings pass through."""
    if isinstance(value, str):
        return value
    return f"{max(value, 0.0):.6f}".rstrip("0").rstrip(".") + "s"


@dataclass(frozen=True)
class Status:
    """A `google.rpc.Status`: an rpc code, a message and typed details."""

    code: int
    message: str = ""
    details: tuple[Json, ...] = ()

    def exception(self) -> OpqueueError:
        """This status as the `OpqueueError` leaf of its code."""
        return error_from_status({"code": self.code, "message": self.message,
                                  "details": list(self.details)})


@dataclass(frozen=True)
class Operation:
    """A `google.longrunning.Operation` with its opqueue metadata as attributes."""

    name: str
    done: bool = False
    job: str = ""
    state: str = ""
    progress_percent: int = 0
    status_message: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 0
    worker: str = ""
    requested_cancellation: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    create_time: datetime | None = None
    start_time: datetime | None = None
    update_time: datetime | None = None
    end_time: datetime | None = None
    response: Any = None
    error: Status | None = None
    raw: Json = field(default_factory=dict, repr=False, compare=False)
    client: Client | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], client: Client | None = None) -> Operation:
        """Parse proto3 JSON; fields left out (at their default) get the default."""
        meta = data.get("metadata") or {}
        error = data.get("error")
        return cls(
            name=data["name"], done=bool(data.get("done")), job=meta.get("job", ""),
            state=meta.get("state", ""), progress_percent=int(meta.get("progressPercent", 0)),
            status_message=meta.get("statusMessage", ""), details=meta.get("details", {}),
            attempt=int(meta.get("attempt", 0)), worker=meta.get("worker", ""),
            requested_cancellation=bool(meta.get("requestedCancellation")),
            labels=meta.get("labels", {}),
            create_time=parse_time(meta.get("createTime")),
            start_time=parse_time(meta.get("startTime")),
            update_time=parse_time(meta.get("updateTime")),
            end_time=parse_time(meta.get("endTime")),
            response=(data.get("response") or {}).get("value"),
            error=None if error is None else Status(
                int(error.get("code", Code.UNKNOWN)), error.get("message", ""),
                tuple(error.get("details") or ())),
            raw=dict(data), client=client)

    @property
    def id(self) -> str:
        """The operation id, the last segment of the name."""
        return self.name.rsplit("/", 1)[-1]

    def result(self, timeout: float | None = None) -> Any:
        """The job's value once done, long-polling WaitOperation; raises the operation's
        error as its `OpqueueError` leaf, or `TimeoutError` if `timeout` passes first."""
        operation = self
        deadline = None if timeout is None else monotonic() + timeout
        while not operation.done:
            if self.client is None:
                raise RuntimeError(f"{self.name} is not done and has no client to wait with")
            remaining = None if deadline is None else deadline - monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{self.name} was not done within {timeout}s")
            operation = self.client.wait(self.name, remaining)
        if operation.error is not None:
            raise operation.error.exception()
        return operation.response


class Client:
    """opqueue's HTTP API over one keep-alive `requests.Session`."""

    def __init__(self, base_url: str, api_key: str | None = None, project: str | None = None,
                 timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def operation_name(self, name: str) -> str:
        """`name` as a full operation name: a bare id gets the client's project."""
        return name if "/" in name else f"{self._parent(None)}/operations/{name}"

    def submit(self, job: str, input: Mapping[str, Any], *, project: str | None = None,
               labels: Mapping[str, str] | None = None, request_id: str | None = None,
               timeout: float | str | None = None) -> Operation:
        """RunJob. A generated `requestId` makes the call safe to retry: the server answers
        a repeat with the same operation."""
        body: Json = {"input": dict(input), "requestId": request_id or str(uuid.uuid4())}
        if labels:
            body["labels"] = dict(labels)
        if timeout is not None:
            body["timeout"] = duration(timeout)
        path = f"/v1/{self._parent(project)}/jobs/{quote(job, safe='')}:run"
        return self._operation(self._call("POST", path, json=body, idempotent=True))

    def get(self, name: str) -> Operation:
        """GetOperation."""
        return self._operation(self._call("GET", self._path(name), idempotent=True))

    def list(self, project: str | None = None, filter: str = "",
             page_size: int | None = None) -> Iterator[Operation]:
        """ListOperations, newest first, fetching the next page only when needed."""
        path = f"/v1/{self._parent(project)}/operations"
        params: Json = {"filter": filter} if filter else {}
        if page_size is not None:
            params["pageSize"] = page_size
        while True:
            page = self._call("GET", path, params=params, idempotent=True)
            for item in page.get("operations", []):
                yield self._operation(item)
            if not page.get("nextPageToken"):
                return
            params["pageToken"] = page["nextPageToken"]

    def wait(self, name: str, timeout: float | None = None) -> Operation:
        """One WaitOperation: the operation once done, or as it is after `timeout` (which
        the server caps)."""
        body = {} if timeout is None else {"timeout": duration(timeout)}
        read = (DEFAULT_WAIT_CAP_SECONDS if timeout is None else timeout) + self.timeout
        return self._operation(self._call("POST", self._path(name) + ":wait", json=body,
                                          idempotent=True, read_timeout=read))

    def cancel(self, name: str) -> None:
        """CancelOperation (asking twice changes nothing, so it is retried too)."""
        self._call("POST", self._path(name) + ":cancel", json={}, idempotent=True)

    def delete(self, name: str) -> None:
        """DeleteOperation: forget the record; a running job is not cancelled."""
        self._call("DELETE", self._path(name))

    def jobs(self) -> builtins.list[Json]:
        """Every job type: name, description, inputSchema and limits."""
        found: builtins.list[Json] = self._call("GET", "/v1/jobs", idempotent=True)["jobs"]
        return found

    def job(self, name: str) -> Json:
        """One job type."""
        return self._call("GET", f"/v1/jobs/{quote(name, safe='')}", idempotent=True)

    def _parent(self, project: str | None) -> str:
        chosen = project or self.project
        if not chosen:
            raise ValueError("no project: pass project= here or to Client()")
        return f"projects/{chosen}"

    def _path(self, name: str) -> str:
        return "/v1/" + quote(self.operation_name(name), safe="/")

    def _operation(self, data: Json) -> Operation:
        return Operation.from_json(data, client=self)

    def _call(self, method: str, path: str, *, json: Json | None = None,
              params: Json | None = None, idempotent: bool = False,
              read_timeout: float | None = None) -> Json:
        """One API call, retried once after a short pause if it is idempotent and the
        server could not be reached or answered 503; errors become `OpqueueError`s."""
        url = self.base_url + path
        timeouts = (self.timeout, read_timeout or self.timeout)
        for attempt in (1, 2):
            retry = idempotent and attempt == 1
            try:
                answer = self.session.request(method, url, json=json, params=params,
                                              timeout=timeouts)
            except requests.ConnectionError as exc:  # includes ConnectTimeout
                if retry:
                    sleep(RETRY_BACKOFF_SECONDS)
                    continue
                raise Unavailable(f"cannot reach {self.base_url}") from exc
            except requests.Timeout as exc:
                raise DeadlineExceeded(
                    f"{self.base_url} did not answer within {timeouts[1]:g}s") from exc
            if answer.status_code == 503 and retry:
                sleep(RETRY_BACKOFF_SECONDS)
                continue
            return _decode(answer)
        raise AssertionError("unreachable: the second attempt returns or raises")


def _decode(answer: requests.Response) -> Json:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not answer.ok:
        raise error_from_envelope(body, answer.status_code)
    return body if isinstance(body, dict) else {}
