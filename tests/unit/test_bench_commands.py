"""How the Redis commands benchmark reads MONITOR's feed and puts each command down to a job
step (bench/redis_probe.py, bench/steps.py)."""

from __future__ import annotations

import json

from bench.redis_probe import Command, parse
from bench.steps import SCRIPTS, by_step

TRANSITION = next(sha for sha, name in SCRIPTS.items() if name == "transition")


def _feed(*lines: str) -> list[Command]:
    commands = [parse(line, len(line) + 2) for line in lines]
    assert all(commands)
    return [command for command in commands if command is not None]


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_a_monitor_line_gives_the_command_its_client_and_its_size_on_the_wire() -> None:
    [command] = _feed(r'+1796227101.731704 [0 127.0.0.1:43092] "SET" "a\"b" "\x00\n"')

    assert (command.name, command.args, command.port) == ("SET", ('a"b', "\x00\n"), 43092)
    assert command.request_bytes == len(b'*3\r\n$3\r\nSET\r\n$3\r\na"b\r\n$2\r\n\x00\n\r\n')
    assert not command.in_script


def test_a_command_a_script_runs_is_counted_with_the_script_and_costs_no_bytes() -> None:
    [command] = _feed('+1796227101.731785 [0 lua] "HSET" "k" "state" "RUNNING"')

    assert command.in_script
    assert (command.request_bytes, command.port) == (0, 0)
    assert parse("+OK", 5) is None


def test_commands_go_to_the_step_of_their_script_event_and_a_pipeline_is_one_round_trip(
) -> None:
    start = _quoted(json.dumps({"event": "start", "now": "1"}))
    commands = _feed(
        f'+1.000000 [0 127.0.0.1:1] "EVALSHA" "{TRANSITION}" "1" "op" {start}',
        '+1.000010 [0 lua] "HGET" "op" "state"',
        '+1.000020 [0 lua] "HSET" "op" "state" "RUNNING"',
        '+1.000500 [0 127.0.0.1:1] "MULTI"',
        '+1.000501 [0 127.0.0.1:1] "ZREM" "unacked_index" "tag"',
        '+1.000502 [0 127.0.0.1:1] "HDEL" "unacked" "tag"',
        '+1.000503 [0 127.0.0.1:1] "EXEC"',
        '+1.000900 [0 127.0.0.1:2] "HGETALL" "op"',
        '+1.000902 [0 127.0.0.1:2] "HGETALL" "op2"',
        '+1.002000 [0 127.0.0.1:2] "HGETALL" "op3"',
    )

    steps = by_step(commands, {1: "worker", 2: "api"}, "get")

    assert (steps["start"].commands, steps["start"].client_commands,
            steps["start"].round_trips) == (3, 1, 1)
    assert (steps["finish"].commands, steps["finish"].round_trips) == (4, 1)  # kombu's ack
    assert (steps["get"].commands, steps["get"].round_trips) == (3, 2)
    assert steps["get"].bytes_in == sum(command.request_bytes for command in commands[-3:])
