"""Watching what a stretch of work costs one Redis and the deployment's processes.

`Watch.phase` runs some work between two `INFO` snapshots (and, if asked, under `MONITOR`),
subtracts what the watching itself cost, and reports the totals and, from MONITOR, the cost
of each job step (bench/steps.py), with the CPU time of the API's and the workers' processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from urllib.parse import urlsplit

import psutil

from bench.redis_probe import Monitor, Probe
from bench.steps import Usage, by_step
from tests.stack import Stack

POLL = 0.05  # seconds between checks of `Watch.until`


@dataclass
class Phase:
    """One watched stretch: INFO's totals, MONITOR's commands by step, and its length."""

    seconds: float = 0.0
    totals: Usage = field(default_factory=Usage)
    steps: dict[str, Usage] = field(default_factory=dict)

    def less(self, offset: Usage) -> Phase:
        """This phase with `offset` taken from its totals (the watching's own cost)."""
        return Phase(self.seconds, self.totals.combine(offset, -1), self.steps)

    def net_of(self, idle: Phase) -> Phase:
        """This phase less `idle`'s background at its rate over this phase's length."""
        by = -self.seconds / idle.seconds
        steps = {name: usage.combine(idle.steps.get(name, Usage()), by)
                 for name, usage in self.steps.items()}
        return Phase(self.seconds, self.totals.combine(idle.totals, by), steps)


def processes(stack: Stack) -> dict[str, list[psutil.Process]]:
    """This process (`client`) and its children by role: `api` (the stack's web and gRPC
    servers) and `worker` (every other: worker nodes, the baseline's), each with its own."""
    names = {process.pid: name for name, process in stack.processes.items()}
    found: dict[str, list[psutil.Process]] = {"client": [psutil.Process()], "api": [],
                                              "worker": []}
    for child in found["client"][0].children():
        role = "api" if names.get(child.pid) in ("web", "grpc") else "worker"
        try:
            found[role] += [child, *child.children(recursive=True)]
        except psutil.Error:  # gone meanwhile
            continue
    return found


def roles(by_role: dict[str, list[psutil.Process]], redis_port: int) -> dict[int, str]:
    """Client port → role for every connection to Redis these processes hold now."""
    found: dict[int, str] = {}
    for role, family in by_role.items():
        for process in family:
            try:
                for connection in process.net_connections(kind="tcp"):
                    if connection.raddr and connection.raddr.port == redis_port:
                        found[connection.laddr.port] = role
            except psutil.Error:
                pass
    return found


def cpu_times(by_role: dict[str, list[psutil.Process]]) -> dict[int, tuple[str, float]]:
    """pid → (role, CPU seconds so far) of the API's and the workers' processes."""
    found: dict[int, tuple[str, float]] = {}
    for role in ("api", "worker"):
        for process in by_role[role]:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            found[process.pid] = (role, times.user + times.system)
    return found


class Watch:
    """INFO (and, if asked, MONITOR) on one Redis, the cost of watching subtracted, and the
    CPU time of the deployment's processes."""

    def __init__(self, stack: Stack, *, monitor: bool) -> None:
        address = urlsplit(stack.redis_url)
        self.stack = stack
        self.port = address.port or 6379
        self.probe = Probe(address.hostname or "127.0.0.1", self.port)
        self.monitor = Monitor(address.hostname or "127.0.0.1", self.port) if monitor else None
        self.offset = Usage()
        empty = [self._measure(lambda: None, "other").totals for _ in range(5)]
        self.offset = Usage(*(min(getattr(u, f.name) for u in empty) for f in fields(Usage)))
        self.offset = replace(self.offset, memory=0.0, redis_cpu=0.0, api_cpu=0.0,
                              worker_cpu=0.0)

    def close(self) -> None:
        """Stop watching."""
        if self.monitor is not None:
            self.monitor.close()
        self.probe.close()

    def idle(self, seconds: float) -> Phase:
        """What Redis runs for `seconds` while nothing is asked of the deployment."""
        return self.phase(lambda: time.sleep(seconds), "other")

    def phase(self, work: Callable[[], None], api_step: str) -> Phase:
        """Run `work`: what it cost (MONITOR's commands of the API's processes go to step
        `api_step`)."""
        return self._measure(work, api_step).less(self.offset)

    def _measure(self, work: Callable[[], None], api_step: str) -> Phase:
        probe, monitor = self.probe, self.monitor
        start = monitor.mark(probe) if monitor else 0
        cpu = cpu_times(processes(self.stack))
        before = probe.info()
        own = (probe.commands, probe.sent, probe.received)
        began = time.monotonic()
        work()
        seconds = time.monotonic() - began
        own = (probe.commands - own[0], probe.sent - own[1], probe.received - own[2])
        after = probe.info()
        by_role = processes(self.stack)
        spent = {"api": 0.0, "worker": 0.0}
        for pid, (role, now) in cpu_times(by_role).items():
            spent[role] += now - cpu.get(pid, (role, 0.0))[1]
        seen = monitor.between(start, monitor.mark(probe)) if monitor else []

        def delta(name: str) -> float:
            return float(after[name]) - float(before[name])

        others = [command for command in seen if command.port != probe.local_port]
        totals = Usage(commands=delta("commands") - own[0],
                       client_commands=sum(1 for command in others if not command.in_script),
                       round_trips=delta("total_reads_processed") - own[0],
                       bytes_in=delta("total_net_input_bytes") - own[1],
                       bytes_out=delta("total_net_output_bytes") - own[2]
                       - sum(command.feed_bytes for command in seen),
                       memory=delta("used_memory") - delta("mem_clients_normal"),
                       redis_cpu=delta("cpu"), api_cpu=spent["api"],
                       worker_cpu=spent["worker"])
        return Phase(seconds, totals, by_step(others, roles(by_role, self.port), api_step))

    def until(self, done: Callable[[Probe], bool], what: str) -> None:
        """Poll through the probe (its cost is subtracted) until `done`."""
        deadline = time.monotonic() + 120
        while not done(self.probe):
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up waiting for {what}")
            time.sleep(POLL)
