"""The GetOperation yardstick: a bare WSGI callable that reads one operation's hash with one
`HGETALL` and answers it as JSON, with nothing of Flask, authentication or rendering.

Served by the same server as the API (`bench.bare_wsgi:create_app` is a factory, as
`app:create_app` is), it measures what one Redis read per request costs on that server:
the floor for GetOperation. `BENCH_BARE_KEY` names the hash; the store's Redis is the
API's (`REDIS_URL`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from core.config import Settings
from core.connection import store_client

ENV_KEY = "BENCH_BARE_KEY"
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def create_app() -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI callable answering every request with the hash at `BENCH_BARE_KEY`."""
    client = store_client(Settings.from_env())
    key = os.environ[ENV_KEY]

    def hgetall(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = json.dumps(client.hgetall(key)).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return hgetall
