"""The `opqueue` command and `opqueue.client` against a live deployment.

Most runs go through the installed `opqueue` script in a subprocess (what a user runs);
the rest through click's CliRunner. Jobs are held at gates the tests open; nothing sleeps.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner, Result

from opqueue.cli import Exit, main
from opqueue.client import Cancelled, Client, NotFound
from tests.stack import Api, Stack, interruptible, open_gate

SCRIPT = Path(sys.executable).parent / "opqueue"
TIMEOUT = 60


def script(api: Api, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `opqueue` script to its end."""
    return subprocess.run([str(SCRIPT), *args], env=environment(api), capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def environment(api: Api) -> dict[str, str]:
    """The script's environment: the stack's URL and the test's own project."""
    return {"PATH": str(SCRIPT.parent), "OPQUEUE_URL": api.base, "OPQUEUE_PROJECT": api.project}


def invoke(api: Api, *args: str) -> Result:
    """Run the command in-process."""
    return CliRunner().invoke(main, ["--url", api.base, "--project", api.project, *args])


class Lines:
    """A running `opqueue` whose stderr is read line by line as it comes."""

    def __init__(self, api: Api, *args: str) -> None:
        self.process = subprocess.Popen(interruptible(SCRIPT, *args), env=environment(api),
                                        text=True, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output

    def line_with(self, text: str) -> str:
        """The next line of stderr that holds `text` (the lines before it are kept)."""
        while True:
            line = self.lines.get(timeout=TIMEOUT)
            assert line is not None, f"the output ended before {text!r}: {self.seen}"
            self.seen.append(line)
            if text in line:
                return line

    def finish(self, answer: str = "") -> tuple[int, str, str]:
        """Exit code, stdout and the rest of stderr, after writing `answer` to stdin."""
        # Not communicate(): it would read stderr too, racing the reader thread.
        assert self.process.stdin
        assert self.process.stdout
        self.process.stdin.write(answer)
        self.process.stdin.close()
        self.process.wait(timeout=TIMEOUT)  # the outputs are a few lines: no pipe fills up
        with self.process.stdout:
            stdout = self.process.stdout.read()
        rest = []
        while (line := self.lines.get(timeout=TIMEOUT)) is not None:
            rest.append(line)
        return self.process.returncode, stdout, "\n".join(rest)

    def close(self) -> None:
        """Kill the command if a failed test left it running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()


@pytest.fixture
def launch(api: Api) -> Iterator[Callable[..., Lines]]:
    """Start `opqueue ARGS...` in the background; whatever is left is stopped afterwards."""
    started: list[Lines] = []

    def start(*args: str) -> Lines:
        started.append(Lines(api, *args))
        return started[-1]

    yield start
    for lines in started:
        lines.close()


def test_jobs_lists_every_job_type(api: Api) -> None:
    done = script(api, "jobs")
    assert done.returncode == 0, done.stderr
    assert any(line.startswith("demo.sleep ") for line in done.stdout.splitlines())
    listed = [json.loads(line)["name"]
              for line in invoke(api, "jobs", "--json").stdout.splitlines()]
    assert {"demo.sleep", "demo.fail", "test.steps"} <= set(listed)


def test_run_wait_prints_the_value(api: Api) -> None:
    done = script(api, "run", "demo.sleep", "--input", '{"seconds": 0.2, "steps": 2}', "--wait")
    assert done.returncode == Exit.OK, done.stderr
    assert json.loads(done.stdout) == {"slept": 0.2, "steps": 2}
    assert done.stderr.splitlines()[-1].startswith("SUCCEEDED  100%")


def test_a_failed_job_exits_with_its_code_on_stderr(api: Api) -> None:
    done = script(api, "run", "demo.fail", "--input", '{"code": "NOT_FOUND"}', "--wait")
    assert done.returncode == Exit.FAILED
    assert done.stdout == ""
    assert done.stderr.splitlines()[-1] == "NOT_FOUND: demo.fail failed as asked"
    assert "Traceback" not in done.stderr


def test_an_unknown_job_or_bad_input_is_one_line(api: Api) -> None:
    unknown = script(api, "run", "demo.nope")
    assert (unknown.returncode, unknown.stderr) == (
        Exit.REFUSED, "NOT_FOUND: job type 'demo.nope' is not registered\n")
    invalid = script(api, "run", "demo.sleep", "--input", '{"seconds": -1}')
    assert invalid.returncode == Exit.REFUSED
    assert invalid.stderr.startswith("INVALID_ARGUMENT: invalid request: input.seconds")
    assert invalid.stderr.count("\n") == 1


def test_json_output_parses(api: Api) -> None:
    submitted = json.loads(invoke(api, "run", "demo.sleep", "--input", '{"seconds": 0}',
                                  "--label", "kind=cli", "--json").stdout)
    assert submitted["name"].startswith(f"projects/{api.project}/operations/")
    assert submitted["metadata"]["labels"] == {"kind": "cli"}
    waited = invoke(api, "wait", submitted["name"], "--json")
    assert waited.exit_code == Exit.OK
    final = json.loads(waited.stdout)  # one JSON document, nothing else on stdout
    assert (final["done"], final["metadata"]["state"]) == (True, "SUCCEEDED")
    assert json.loads(invoke(api, "get", submitted["name"], "--json").stdout) == final
    shown = invoke(api, "get", submitted["name"]).stdout.splitlines()
    assert shown[0].startswith(submitted["name"].rpartition("/")[2])
    assert shown[0].split()[1:4] == ["demo.sleep", "SUCCEEDED", "100%"]
    assert json.loads(shown[1]) == {"slept": 0, "steps": 10}


def test_list_with_a_filter(api: Api) -> None:
    slept = [api.run("demo.sleep", {"seconds": 0})["name"] for _ in range(3)]
    api.run("demo.fail", {})
    done = script(api, "list", "--filter", 'metadata.job = "demo.sleep"', "--page-size", "2",
                  "--json")
    assert done.returncode == 0, done.stderr
    listed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [operation["name"] for operation in listed] == slept[::-1]  # newest first
    table = invoke(api, "list").stdout.splitlines()
    assert len(table) == 4
    assert "demo.fail" in table[0]


def test_cancel_then_wait_exits_cancelled(api: Api) -> None:
    operation = api.run("test.gate", {"gate": uuid.uuid4().hex})
    api.state_becomes(operation["name"], "RUNNING")
    operation_id = operation["name"].rsplit("/", 1)[1]
    cancelled = script(api, "cancel", operation_id)  # a bare id: the project completes it
    assert (cancelled.returncode, cancelled.stdout) == (0, f"cancel requested: "
                                                          f"{operation['name']}\n")
    done = script(api, "wait", operation_id)
    assert done.returncode == Exit.CANCELLED
    assert done.stderr.splitlines()[-1].startswith("CANCELLED: ")
    assert api.get(operation["name"])["metadata"]["state"] == "CANCELLED"


def test_progress_lines_follow_each_step(launch: Callable[..., Lines], stack: Stack) -> None:
    gate = uuid.uuid4().hex
    run = launch("run", "test.steps", "--input", json.dumps({"gate": gate, "steps": 3}),
                "--wait")
    run.line_with("RUNNING")
    shown = []
    for step in (1, 2, 3):
        open_gate(stack, gate)  # one step through; its progress is the signal
        shown.append(run.line_with(f"step {step} of 3"))
    code, stdout, _ = run.finish()
    assert code == Exit.OK
    assert json.loads(stdout) == {"steps": 3}
    assert shown == ["RUNNING     33%  step 1 of 3", "RUNNING     66%  step 2 of 3",
                     "SUCCEEDED  100%  step 3 of 3"]


@pytest.mark.parametrize("answer", ["y", "n"])
def test_ctrl_c_asks_whether_to_cancel(api: Api, stack: Stack, launch: Callable[..., Lines],
                                       answer: str) -> None:
    gate = uuid.uuid4().hex
    run = launch("run", "test.gate", "--input", json.dumps({"gate": gate}), "--wait")
    name = run.line_with("operation ").split()[1]
    run.line_with("RUNNING")  # the command is long-polling now
    run.process.send_signal(signal.SIGINT)
    code, _, rest = run.finish(answer + "\n")
    assert code == Exit.INTERRUPTED
    assert f"Cancel operation {name}? [y/N]" in rest
    assert "Traceback" not in rest
    state = api.wait(name, "1s")["metadata"]["state"]
    if answer == "y":
        assert state in ("CANCELLING", "CANCELLED")
        assert api.wait(name)["metadata"]["state"] == "CANCELLED"
    else:
        assert state == "RUNNING"
        open_gate(stack, gate)
        assert api.wait(name)["metadata"]["state"] == "SUCCEEDED"


def test_the_python_client(api: Api, stack: Stack) -> None:
    with Client(api.base, project=api.project) as client:
        job = client.submit("demo.sleep", {"seconds": 0.1, "steps": 2}, labels={"k": "v"})
        assert job.result(timeout=30) == {"slept": 0.1, "steps": 2}
        assert client.get(job.id).state == "SUCCEEDED"

        with pytest.raises(NotFound) as raised:
            client.submit("demo.fail", {"code": "NOT_FOUND", "message": "no such thing"}
                          ).result(timeout=30)
        assert (raised.value.message, raised.value.reason) == ("no such thing", "DEMO_FAILURE")
        assert raised.value.http_status is None  # the operation failed, not the call

        request_id = str(uuid.uuid4())
        again = [client.submit("demo.sleep", {"seconds": 0}, request_id=request_id).name
                 for _ in range(2)]
        assert again[0] == again[1]
        found = [op.name for op in client.list(filter='metadata.labels.k = "v"', page_size=1)]
        assert found == [job.name]

        gate = uuid.uuid4().hex
        held = client.submit("test.gate", {"gate": gate})
        with pytest.raises(TimeoutError):
            held.result(timeout=0.5)  # one long-poll of 0.5 s, then the deadline
        client.cancel(held.name)
        with pytest.raises(Cancelled):
            held.result(timeout=30)
        client.delete(held.name)
        with pytest.raises(NotFound) as missing:
            client.get(held.name)
        assert (missing.value.http_status, missing.value.reason) == (404, "OPERATION_NOT_FOUND")
