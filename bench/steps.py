"""Which job step each Redis command belongs to, and what each step cost.

A client call is one command, a script with the commands it ran, or a MULTI ... EXEC block.
It goes to a step by the process that sent it (its role: `api`, `worker`, or `client`, the
benchmark's own process sending Celery tasks) and by what it is: the transition script's
event, the message take and its unacknowledged record, the acknowledgement, Celery's result.
Calls of one client sent back to back (under PIPELINED apart, as a pipeline arrives) are one
round trip.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field, fields
from pathlib import Path

from bench.redis_probe import Command

PIPELINED = 15e-6  # seconds: commands of one client closer than this came in one write
ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {hashlib.sha1(path.read_bytes()).hexdigest(): path.stem
           for folder in ("core/lua", "workers/lua") for path in (ROOT / folder).glob("*.lua")}
TAKES = frozenset({"BLMOVE", "BRPOP", "BLPOP"})
WORKER_EVENTS = {"start": "start", "progress": "progress"}  # any other event ends the job


@dataclass
class Usage:
    """What some work cost Redis."""

    commands: float = 0.0  # run, those inside scripts included
    client_commands: float = 0.0  # sent by clients (MONITOR only)
    round_trips: float = 0.0
    bytes_in: float = 0.0  # client → Redis
    bytes_out: float = 0.0  # Redis → client (INFO only)
    memory: float = 0.0  # growth of the data (INFO only)
    redis_cpu: float = 0.0  # seconds of Redis's command thread (INFO only)
    api_cpu: float = 0.0  # seconds of the API's processes
    worker_cpu: float = 0.0  # seconds of the worker nodes' processes, pools included

    def combine(self, other: Usage, by: float = 1.0) -> Usage:
        """self + by * other, figure by figure."""
        return Usage(*(getattr(self, f.name) + by * getattr(other, f.name)
                       for f in fields(self)))

    def per(self, count: float) -> Usage:
        """Each figure divided by `count`."""
        return Usage(*(getattr(self, f.name) / count for f in fields(self)))


@dataclass
class Unit:
    """One client call as the server saw it: a command, a script with what it ran, or a
    MULTI ... EXEC block."""

    port: int
    role: str
    sent: list[Command]
    ran: list[Command] = field(default_factory=list)  # by a script, inside this call

    @property
    def ended(self) -> float:
        """When the server finished it, as near as MONITOR says."""
        return (self.ran or self.sent)[-1].at


def units(commands: list[Command], role_of: dict[int, str]) -> list[Unit]:
    """The commands grouped into client calls, in the order the server ran them."""
    found: list[Unit] = []
    open_blocks: dict[int, Unit] = {}
    for command in commands:
        if command.in_script:
            if found:
                found[-1].ran.append(command)
            continue
        block = open_blocks.get(command.port)
        if block is not None:
            block.sent.append(command)
            if command.name in ("EXEC", "DISCARD"):
                del open_blocks[command.port]
            continue
        unit = Unit(command.port, role_of.get(command.port, "unknown"), [command])
        found.append(unit)
        if command.name == "MULTI":
            open_blocks[command.port] = unit
    return found


def step_of(unit: Unit, api_step: str) -> str:
    """Which job step a client call belongs to."""
    if unit.role == "api":
        return api_step
    if unit.role == "client":
        return "submit"  # Celery's apply_async, sent from this process
    first, names = unit.sent[0], {command.name for command in unit.sent}
    script = SCRIPTS.get(first.args[0]) if first.name == "EVALSHA" else \
        SCRIPTS.get(hashlib.sha1(first.args[0].encode()).hexdigest()) \
        if first.name == "EVAL" else None
    if script == "transition":
        event = json.loads(first.args[2 + int(first.args[1])]).get("event", "")
        return WORKER_EVENTS.get(event, "finish")
    # The worker takes the message (and kombu records it as unacknowledged) ...
    if script == "accept" or first.name in TAKES or (first.name == "MULTI" and "ZADD" in names):
        return "start"
    # ... and acknowledges it (kombu), or stores its result (Celery).
    if (first.name == "MULTI" and "ZREM" in names) or \
            any("celery-task-meta" in arg for command in unit.sent for arg in command.args):
        return "finish"
    return "other"


def by_step(commands: list[Command], role_of: dict[int, str], api_step: str
            ) -> dict[str, Usage]:
    """MONITOR's commands summed per step."""
    steps: dict[str, Usage] = defaultdict(Usage)
    previous: Unit | None = None
    for unit in units(commands, role_of):
        usage = steps[step_of(unit, api_step)]
        usage.commands += len(unit.sent) + len(unit.ran)
        usage.client_commands += len(unit.sent)
        usage.bytes_in += sum(command.request_bytes for command in unit.sent)
        if previous is None or previous.port != unit.port or \
                unit.sent[0].at - previous.ended > PIPELINED:
            usage.round_trips += 1
        previous = unit
    return dict(steps)
