"""The Procfile's `web` process (Granian): SIGTERM lets the requests in flight finish."""

from __future__ import annotations

import signal
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

from core.embedded_redis import free_port
from core.names import new_operation_id
from tests.stack import ROOT, Stack, eventually, procfile_command


def established(process: subprocess.Popen[bytes], port: int) -> int:
    """Client connections the server's processes hold open on `port` right now."""
    parent = psutil.Process(process.pid)
    return sum(1 for each in (parent, *parent.children(recursive=True))
               for connection in each.net_connections(kind="tcp")
               if connection.status == psutil.CONN_ESTABLISHED
               and connection.laddr and connection.laddr.port == port)


def ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=2).ok
    except requests.ConnectionError:  # not listening yet
        return False


def test_sigterm_lets_a_parked_wait_answer_then_exits(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    env = {**stack.env, "PORT": str(port), "OPQUEUE_WEB_PROCESSES": "1"}
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "web.log").open("ab") as out:
        web = subprocess.Popen(procfile_command("web"), cwd=ROOT, env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    try:
        eventually(lambda: ready(base), what="the API to be ready")
        store = stack.store()
        operation, _ = store.create(f"p-{uuid.uuid4().hex[:8]}", new_operation_id(),
                                    "demo.sleep")
        store.redis.close()
        with ThreadPoolExecutor(1) as pool:  # the session's waits end after 3 s
            waiting = pool.submit(requests.post, f"{base}/v1/{operation.name}:wait",
                                  json={"timeout": "3s"}, timeout=30)
            eventually(lambda: established(web, port) > 0, what="the wait to be parked")
            web.send_signal(signal.SIGTERM)
            answer = waiting.result()
        assert answer.status_code == 200
        assert answer.json()["name"] == operation.name
        assert web.wait(timeout=30) == 0
    finally:
        if web.poll() is None:
            web.kill()
            web.wait()
