"""Every example in the README runs as printed against `make run`'s defaults (#18).

`make run`'s launcher is started from a project directory holding the README's own job
module, with the settings the README tells the reader to set, on free ports (the only
change made to the examples: `http://127.0.0.1:8000` and the embedded Redis's port 16379
become the ports in use). Then, in README order:
- shell blocks run in bash, from the checkout, with the variables earlier blocks set;
- console blocks run command by command, and what each prints must have the shape of the
  lines the README shows after it (ids, times, numbers, states and job names set aside);
- Python blocks run as they are; the job module block is the file the launcher loaded;
- a JSON block right after a shell block is what that block's last answer must look like:
  the same keys, the same kinds of values.
A block is left out only with `<!-- not run: why -->` right before it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.embedded_redis import free_port
from tests.launcher import launched
from tests.stack import ROOT

README = ROOT / "README.md"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_REDIS_PORT = "-p 16379"
JOB_MODULE = "# myjobs/images.py"
GOOGLE_SECTION = "## Use it from Google's client libraries"  # tests/.../test_google_client.py
NOT_RUN = re.compile(r"^<!-- not run: (.+) -->$")


@dataclass(frozen=True)
class Block:
    """A fenced block of the README."""

    section: str
    language: str
    code: str
    line: int
    not_run: str  # why, if it is not run
    adjacent: bool  # nothing but blank lines between the block before and this one

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.language}, {self.section})"


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    section, language, start, code, note, last_end = "", "", 0, [], "", -2
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if language:
            if line == "```":
                between = lines[last_end:start - 1]
                found.append(Block(section, language, "\n".join(code) + "\n", start, note,
                                   adjacent=last_end >= 0 and not any(between)))
                language, code, note, last_end = "", [], "", number
            else:
                code.append(line)
        elif line.startswith("## "):
            section = line
        elif line.startswith("```") and len(line) > 3:
            language, start = line[3:], number
            previous = next((text for text in reversed(lines[:number - 1]) if text), "")
            match = NOT_RUN.match(previous)
            note = match.group(1) if match else ""
    return found


@dataclass
class Served:
    """The launcher the examples run against."""

    base: str
    redis_port: int
    env: dict[str, str]

    def printed(self, code: str) -> str:
        return code.replace(DEFAULT_URL, self.base) \
                   .replace(DEFAULT_REDIS_PORT, f"-p {self.redis_port}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    project = tmp_path_factory.mktemp("readme")
    [module] = [block.code for block in blocks(README.read_text())
                if block.language == "python" and block.code.startswith(JOB_MODULE)]
    (project / "myjobs").mkdir()
    (project / "myjobs" / "__init__.py").write_text("")
    (project / "myjobs" / "images.py").write_text(module)
    log = project / "run.log"
    with launched(project, free_port(), log, **readme_settings(blocks(README.read_text()))
                  ) as base:
        [redis_url] = re.findall(r"Redis: +(\S+)", log.read_text())
        env = {**os.environ, "OPQUEUE_URL": base,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        yield Served(base, int(redis_url.rsplit(":", 1)[1].split("/")[0]), env)


def readme_settings(found: list[Block]) -> dict[str, str]:
    """The variables the README's `NAME=value ... make run` lines set."""
    settings: dict[str, str] = {}
    for block in found:
        for line in block.code.splitlines():
            words = line.split("#")[0].split()
            if block.language == "sh" and words[-2:] == ["make", "run"]:
                for word in words[:-2]:
                    name, _, value = word.partition("=")
                    settings[name] = value.strip("'")
    return settings


def test_every_example_runs_as_printed_and_prints_what_the_readme_shows(
        served: Served) -> None:
    found = blocks(README.read_text())
    assert found
    assignments: list[str] = []  # the shell variables set so far, as the reader set them
    for index, block in enumerate(found):
        if block.not_run or block.section == GOOGLE_SECTION:
            continue
        if block.language == "sh":
            output = run_shell(served, "\n".join([*assignments, block.code]), block)
            assignments += [statement for statement in statements(block.code)
                            if re.match(r"^[A-Z_]+=", statement)]
            after = found[index + 1] if index + 1 < len(found) else None
            if after and after.adjacent and after.language == "json":
                shown = json.loads(after.code)
                answer = json_documents(output)[-1]
                assert same_shape(shown, answer), f"{after}: {answer}"
        elif block.language == "console":
            run_console(served, block)
        elif block.language == "python":
            if block.code.startswith(JOB_MODULE):
                continue  # the module the launcher loaded; its job runs in a shell block
            exec(compile(served.printed(block.code), str(block), "exec"),
                 {"__name__": "readme"})


def statements(code: str) -> list[str]:
    """The shell code's lines, each with the lines it continues onto (trailing `\\`)."""
    return re.split(r"(?<!\\)\n", code.strip())


def run_shell(served: Served, code: str, block: Block) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", served.printed(code)], cwd=ROOT,
                          env=served.env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, f"{block}:\n{done.stdout}\n{done.stderr}"
    for document in json_documents(done.stdout):
        assert not (isinstance(document, dict) and "error" in document), f"{block}: {document}"
    return done.stdout


def run_console(served: Served, block: Block) -> None:
    commands: list[tuple[str, list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        else:
            commands[-1][1].append(line)
    # One shell, so `$?` is the previous command's status; a marker after each output.
    script = "\n".join(f'{command} 2>&1; __status=$?; echo "@@@"; (exit $__status)'
                       for command, _ in commands)
    done = subprocess.run(["bash", "-c", served.printed(script)], cwd=ROOT, env=served.env,
                          capture_output=True, text=True, timeout=120, check=False)
    outputs = done.stdout.split("@@@\n")
    for (command, shown), printed in zip(commands, outputs, strict=False):
        expected = {shape(line) for line in shown}
        actual = {shape(line) for line in printed.splitlines()}
        assert actual == expected, f"{block}: `{command}` printed\n{printed}"


PATTERNS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)"), "<time>"),
    (re.compile(r"\b(PENDING|RUNNING|CANCELLING|SUCCEEDED|FAILED|CANCELLED)\b"), "<state>"),
    (re.compile(r"\b(demo|images|test)\.[a-z_]+"), "<job>"),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]


def shape(line: str) -> str:
    """A printed line with what changes from run to run set aside."""
    for pattern, placeholder in PATTERNS:
        line = pattern.sub(placeholder, line)
    return line.strip()


def json_documents(text: str) -> list[Any]:
    """Every JSON object in `text`, in order (curl prints them back to back)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) >= 0:
        try:
            document, at = decoder.raw_decode(text, start)
        except ValueError:
            at = start + 1
            continue
        found.append(document)
    return found


def same_shape(shown: Any, actual: Any) -> bool:
    """The same keys all the way down and the same kinds of values."""
    if isinstance(shown, dict):
        return isinstance(actual, dict) and shown.keys() == actual.keys() \
            and all(same_shape(value, actual[key]) for key, value in shown.items())
    if isinstance(shown, list):
        return isinstance(actual, list) and all(same_shape(shown[0], item) for item in actual) \
            if shown else isinstance(actual, list)
    if isinstance(shown, bool) or shown is None:
        return type(actual) is type(shown)
    if isinstance(shown, int | float):
        return isinstance(actual, int | float) and not isinstance(actual, bool)
    return isinstance(actual, type(shown))


def test_the_readme_leaves_out_only_what_it_says_why() -> None:
    found = blocks(README.read_text())
    skipped = [block for block in found if block.not_run]
    assert all(len(block.not_run) > 10 for block in skipped)
    runnable = [block for block in found if block.language in {"sh", "console", "python"}]
    assert len(skipped) <= 6, [str(block) for block in skipped]
    assert len(runnable) > 15
