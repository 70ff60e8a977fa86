"""HTTP load: many concurrent keep-alive clients for a fixed time, and what they measured.

`wrk` (Debian's package; `make bench` installs it when it can) is the load generator: it
is C on an event loop, so two of its threads drive 32 keep-alive connections at tens of
thousands of requests a second for a few percent of one core, leaving the two cores to the
server under test. Where `wrk` is missing, a Python generator (processes x threads of
keep-alive `http.client` connections) stands in; it costs far more CPU per request, so its
figures are a floor, and the row says which generator was used.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.report import percentile

WRK_THREADS = 2
FALLBACK_PROCESSES = 2
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass(frozen=True)
class Load:
    """What one load run measured."""

    requests: int
    seconds: float
    p50: float  # latencies, seconds
    p99: float
    errors: int  # non-2xx answers, socket errors and timeouts
    generator: str

    @property
    def rate(self) -> float:
        """Answers per second."""
        return self.requests / self.seconds


def generator() -> str:
    """`wrk` if it is installed, else `python`."""
    return "wrk" if shutil.which("wrk") else "python"


def hammer(url: str, *, connections: int, seconds: float, method: str = "GET",
           body: dict[str, object] | None = None) -> Load:
    """`connections` keep-alive clients sending the same request to `url` for `seconds`."""
    payload = "" if body is None else json.dumps(body, separators=(",", ":"))
    if generator() == "wrk":
        return _wrk(url, connections, seconds, method, payload)
    return _python(url, connections, seconds, method, payload)


def _wrk(url: str, connections: int, seconds: float, method: str, payload: str) -> Load:
    script = (f"wrk.method = {json.dumps(method)}\n"
              f"wrk.body = {_lua_string(payload)}\n"
              'wrk.headers["Content-Type"] = "application/json"\n')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        done = subprocess.run(
            ["wrk", f"-t{min(WRK_THREADS, connections)}", f"-c{connections}",
             f"-d{seconds:g}s", "--timeout", "10s", "--latency", "-s", handle.name, url],
            capture_output=True, text=True, timeout=seconds + 60, check=True)
    finally:
        Path(handle.name).unlink()
    return _parse_wrk(done.stdout)


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]" if text else '""'


def _parse_wrk(output: str) -> Load:
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if total is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    unit = total.group(3)
    seconds = float(total.group(2)) * (60.0 if unit == "m" else _UNITS[unit])
    latency = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+\w+)", output, re.MULTILINE))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    if socket:
        errors += sum(int(n) for n in socket.groups())
    return Load(int(total.group(1)), seconds, _duration(latency["50"]),
                _duration(latency["99"]), errors, "wrk")


def _duration(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise RuntimeError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _python(url: str, connections: int, seconds: float, method: str, payload: str) -> Load:
    processes = max(1, min(FALLBACK_PROCESSES, connections))
    shares = [connections // processes + (i < connections % processes)
              for i in range(processes)]
    start = time.perf_counter()
    with ProcessPoolExecutor(processes) as pool:
        parts = list(pool.map(_python_share, [url] * processes, shares, [seconds] * processes,
                              [method] * processes, [payload] * processes))
    elapsed = time.perf_counter() - start
    latencies = [latency for share, _ in parts for latency in share]
    errors = sum(failed for _, failed in parts)
    if not latencies:
        raise RuntimeError(f"no answer from {url}")
    return Load(len(latencies), min(elapsed, seconds), percentile(latencies, 50),
                percentile(latencies, 99), errors, "python")


def _python_share(url: str, clients: int, seconds: float, method: str,
                  payload: str) -> tuple[list[float], int]:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    headers = {"Content-Type": "application/json"}

    def client() -> None:
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                timeout=10)
        mine: list[float] = []
        failed = 0
        try:
            while (sent := time.perf_counter()) < deadline:
                try:
                    connection.request(method, path, body=payload or None, headers=headers)
                    answer = connection.getresponse()
                    answer.read()
                except (OSError, http.client.HTTPException):
                    failed += 1
                    connection.close()
                    continue
                mine.append(time.perf_counter() - sent)
                failed += answer.status >= 300
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)
                errors[0] += failed

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return latencies, errors[0]
