"""`context.progress()` inside a real job: calls a second, and how stale readers find it.

A `bench.progress` job reports in a tight loop, each report carrying the wall-clock time it
was made; meanwhile this process reads the operation's stored `details` every 20 ms, and
the staleness of a read is its time minus the newest stored report's.
"""

from __future__ import annotations

import json
import time
import uuid

from bench import environment
from bench.report import Row, median_row
from bench.throughput import E2E_NODE
from core import record
from core.connection import redis_client
from tests.stack import Api, Stack

READ_EVERY = 0.02


def progress_rate(stack: Stack, quick: bool = False) -> list[Row]:
    """progress() calls per second in a job, and the metadata's worst staleness."""
    runs, seconds = (1, 1.0) if quick else (3, 3.0)
    environment.use_workers(stack, E2E_NODE)
    api = Api(stack.base_url, f"bench-{uuid.uuid4().hex[:12]}")
    client = redis_client(stack.redis_url)
    rates: list[float] = []
    stalest: list[float] = []
    try:
        for _ in range(runs):
            name = api.run("bench.progress", {"seconds": seconds})["name"]
            key = stack.store().keys.operation(api.project, name.rsplit("/", 1)[1])
            api.state_becomes(name, "RUNNING", "SUCCEEDED")
            worst = 0.0
            deadline = time.monotonic() + seconds + 30
            while (state := client.hget(key, record.STATE)) == "RUNNING":
                details = client.hget(key, record.DETAILS)
                if details:
                    worst = max(worst, time.time() - json.loads(details)["at"])
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} still running")
                time.sleep(READ_EVERY)
            done = api.wait(name)
            if state != "SUCCEEDED" or done["metadata"]["state"] != "SUCCEEDED":
                raise RuntimeError(f"{name} ended {done['metadata']['state']}")
            value = done["response"]["value"]
            rates.append(value["calls"] / value["seconds"])
            stalest.append(worst)
            final = done["metadata"].get("details", {})
            if final.get("calls") != value["calls"]:
                raise RuntimeError(f"{name}: the last report was lost ({final} vs {value})")
    finally:
        client.close()
        api.http.close()
    return [
        median_row("progress() calls per second inside a job", rates, unit="/s",
                   target=50_000, higher_is_better=True,
                   note=f"{runs} job(s) reporting in a tight loop for {seconds:g} s on a worker "
                        "process; every job's final metadata holds its last report"),
        median_row("progress metadata staleness, worst read while running", stalest,
                   target=1.0,
                   note=f"a read every {READ_EVERY * 1000:.0f} ms of the stored details: read "
                        "time minus the time of the newest stored report"),
    ]
