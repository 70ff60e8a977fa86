"""Parked WaitOperation calls: many clients each holding a `:wait` on an operation that is
not done, so a load run can measure what they cost the short requests beside them.

The waits are plain keep-alive sockets (one file descriptor each, no thread in this
process). They are released by finishing the operation they wait on, which wakes every one
of them; each must then answer 200 with the done operation.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from urllib.parse import urlsplit

from app.long_requests import DEPLOYMENT
from core.names import new_operation_id
from core.states import Event
from core.store import OperationStore
from tests.waiting import eventually

WAIT_BODY = json.dumps({"timeout": "60s"}).encode()


def _request(path: str, host: str) -> bytes:
    return (f"POST {path}:wait HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(WAIT_BODY)}\r\n\r\n").encode() + WAIT_BODY


@contextmanager
def parked_waits(base_url: str, store: OperationStore, project: str, count: int, *,
                 timeout: float = 120.0) -> Iterator[int]:
    """`count` `:wait` calls sent on one PENDING operation of `project` and parked while
    the block runs (it gets how many the server parked: all of them, unless it could not
    within `timeout`); then the operation is cancelled and every wait must answer with it."""
    operation, _ = store.create(project, new_operation_id(), "bench.noop")
    url = urlsplit(base_url)
    address = (url.hostname or "127.0.0.1", url.port or 80)
    request = _request(f"/v1/{operation.name}", url.netloc)
    held = store.keys.long_requests(DEPLOYMENT)
    before = int(store.redis.zcard(held))
    with ExitStack() as sockets:
        clients = [sockets.enter_context(socket.create_connection(address, timeout=90))
                   for _ in range(count)]
        for client in clients:
            client.sendall(request)
        def parked() -> int:
            return int(store.redis.zcard(held)) - before

        with suppress(TimeoutError):
            eventually(lambda: parked() >= count, timeout=timeout,
                       what=f"{count} :wait calls to be parked")
        yield parked()
        store.apply(project, operation.id, Event.CONFIRM_CANCEL)
        for client in clients:
            answer = http.client.HTTPResponse(client)
            answer.begin()
            body = answer.read()
            if answer.status != 200 or not json.loads(body)["done"]:
                raise RuntimeError(f"a parked :wait answered {answer.status}: {body[:300]!r}")
