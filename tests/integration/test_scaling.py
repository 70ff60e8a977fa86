"""Two worker processes on one queue both take jobs."""

from __future__ import annotations

import uuid

from tests.stack import Api, Stack, open_gate


def test_two_workers_sharing_a_queue_both_take_jobs(api: Api, stack: Stack) -> None:
    # Each node (concurrency 2, prefetch multiplier 1, late acks) holds at most two
    # unfinished jobs, so four jobs that wait at a gate must land two on each node.
    gate = uuid.uuid4().hex
    names = [api.run("test.gate", {"gate": gate})["name"] for _ in range(4)]
    running = [api.state_becomes(name, "RUNNING") for name in names]
    nodes = [op["metadata"]["worker"].split("@")[0] for op in running]
    assert sorted(nodes) == ["w1", "w1", "w2", "w2"]
    open_gate(stack, gate, times=4)
    pids = {api.wait(name)["response"]["value"]["pid"] for name in names}
    assert len(pids) == 4  # four pool processes, two per node
