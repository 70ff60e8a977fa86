"""Watching one Redis from the outside: its counters (`INFO`) and every command it runs
(`MONITOR`), through raw sockets whose own bytes and commands are counted, so the watching
can be subtracted exactly from what it watched.

`Probe` is a minimal RESP2 client: each call is one round trip, and it keeps how many
commands it sent and how many bytes went each way. `Monitor` reads the MONITOR feed on a
thread: every command with its time, its client (`lua` for one run inside a script) and the
size of its request on the wire, and how many bytes the feed itself took.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# What an `INFO` snapshot keeps, from its `stats` and `memory` sections.
COUNTERS = ("total_reads_processed", "total_net_input_bytes",
            "total_net_output_bytes", "used_memory", "mem_clients_normal")
# CPU seconds of the thread that runs commands (older servers: of the whole process).
CPU = ("used_cpu_sys_main_thread", "used_cpu_user_main_thread")
_LINE = re.compile(r"^\+(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$")


def _request(args: tuple[Any, ...]) -> bytes:
    parts = [str(arg).encode() if not isinstance(arg, bytes) else arg for arg in args]
    return b"".join([f"*{len(parts)}\r\n".encode(),
                     *(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)])


class Probe:
    """A RESP2 connection of its own, counting what it costs the server."""

    def __init__(self, host: str, port: int) -> None:
        self.socket = socket.create_connection((host, port), timeout=30)
        self.reader = self.socket.makefile("rb")
        self.commands = 0
        self.sent = 0
        self.received = 0

    @property
    def local_port(self) -> int:
        """This connection's own port: how MONITOR names it."""
        return int(self.socket.getsockname()[1])

    def call(self, *args: Any) -> Any:
        """Send one command and read its reply (an error reply raises)."""
        request = _request(args)
        self.socket.sendall(request)
        self.commands += 1
        self.sent += len(request)
        return self._reply()

    def _line(self) -> bytes:
        line = self.reader.readline()
        self.received += len(line)
        return line[:-2]

    def _reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest.decode()
        if kind == b"$":
            if int(rest) < 0:
                return None
            data = self.reader.read(int(rest) + 2)
            self.received += len(data)
            return data[:-2].decode(errors="replace")
        if kind == b"*":
            return None if int(rest) < 0 else [self._reply() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line[:40]!r}")

    def info(self) -> dict[str, Any]:
        """The server's counters now, one dict: from `stats` and `memory`, `commands` (the
        calls of `commandstats`, summed) and `cpu` (seconds of its command thread)."""
        text = self.call("INFO", "everything")
        found: dict[str, Any] = {}
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.startswith("cmdstat_"):
                found[name] = int(value.split("calls=")[1].split(",")[0])
            elif name in COUNTERS:
                found[name] = int(value)
            elif name in CPU or name in ("used_cpu_sys", "used_cpu_user"):
                found[name] = float(value)
        found["commands"] = sum(calls for name, calls in found.items()
                                if name.startswith("cmdstat_"))
        found["cpu"] = sum(found.get(name, 0.0) for name in CPU) or \
            found.get("used_cpu_sys", 0.0) + found.get("used_cpu_user", 0.0)
        return found

    def close(self) -> None:
        """Close the connection."""
        self.reader.close()
        self.socket.close()


@dataclass(frozen=True)
class Command:
    """One command as MONITOR showed it."""

    at: float  # the server's clock, seconds
    client: str  # `host:port`, or `lua` for a command run by a script
    name: str  # upper case
    args: tuple[str, ...]
    request_bytes: int  # its size as a RESP request (0 inside a script: no network)
    feed_bytes: int  # what the line cost the MONITOR connection

    @property
    def port(self) -> int:
        """The client's port (0 for a script)."""
        host, _, port = self.client.rpartition(":")
        return int(port) if host and port.isdigit() else 0

    @property
    def in_script(self) -> bool:
        """True for a command a Lua script ran."""
        return self.client == "lua"


def _arguments(text: str) -> list[str]:
    """The arguments of a MONITOR line (each quoted, escaped as `sdscatrepr` does)."""
    found, at = [], 0
    while (at := text.find('"', at)) >= 0:
        chars, at = [], at + 1
        while text[at] != '"':
            if text[at] == "\\":
                code = text[at + 1]
                if code == "x":
                    chars.append(chr(int(text[at + 2:at + 4], 16)))
                    at += 4
                    continue
                chars.append({"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}
                             .get(code, code))
                at += 2
                continue
            chars.append(text[at])
            at += 1
        found.append("".join(chars))
        at += 1
    return found


def parse(line: str, feed_bytes: int) -> Command | None:
    """One MONITOR line as a Command (None for the `+OK` that starts the feed)."""
    matched = _LINE.match(line)
    if matched is None:
        return None
    args = _arguments(matched.group(3))
    client = matched.group(2)
    size = 0 if client == "lua" else len(_request(tuple(a.encode("latin-1", "replace")
                                                      for a in args)))
    return Command(float(matched.group(1)), client, args[0].upper(), tuple(args[1:]), size,
                   feed_bytes)


@dataclass
class Monitor:
    """Every command the server runs while this runs, in the order it ran them."""

    host: str
    port: int
    commands: list[Command] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.socket = socket.create_connection((self.host, self.port), timeout=30)
        self.socket.sendall(b"MONITOR\r\n")
        self.reader = self.socket.makefile("rb")
        if self.reader.readline() != b"+OK\r\n":
            raise RuntimeError("MONITOR refused")
        self.thread = threading.Thread(target=self._read, daemon=True, name="monitor")
        self.thread.start()

    def _read(self) -> None:
        for raw in self.reader:
            command = parse(raw.decode("latin-1").rstrip("\r\n"), len(raw))
            if command is not None:
                with self.lock:
                    self.commands.append(command)

    def mark(self, probe: Probe) -> int:
        """Send a marker through `probe` and wait until the feed shows it: every command the
        server ran before it is in `commands`. Returns the marker's position there."""
        token = f"bench-mark-{time.monotonic_ns()}"
        probe.call("ECHO", token)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self.lock:
                for at in range(len(self.commands) - 1, -1, -1):
                    if self.commands[at].name == "ECHO" and self.commands[at].args == (token,):
                        return at
            time.sleep(0.01)
        raise TimeoutError("the MONITOR feed never showed the marker")

    def between(self, start: int, end: int) -> list[Command]:
        """The commands after marker `start` and before marker `end`."""
        with self.lock:
            return self.commands[start + 1:end]

    def close(self) -> None:
        """Stop watching."""
        self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        self.thread.join(timeout=5)
