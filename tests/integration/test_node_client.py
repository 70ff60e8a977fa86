"""Google's Node client library (google-gax), built only from opqueue's published protos and
service config (tests/node/opqueue.js), against a live deployment over gRPC and over REST.

The packages come from the npm registry through tests/node/package-lock.json (`npm ci`, once
per lockfile, into tests/node/node_modules). Without node and npm (`make test` installs
Debian's where it can) these tests are skipped, saying why.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from typing import Any

import pytest

from tests.stack import ROOT, Api, Stack

NODE_DIR = ROOT / "tests" / "node"
LOCKFILE = NODE_DIR / "package-lock.json"
INSTALLED = NODE_DIR / "node_modules" / ".opqueue-lockfile-sha256"


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with tests/node's packages installed as the lockfile pins them."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed (make test installs them where it can)")
    wanted = hashlib.sha256(LOCKFILE.read_bytes()).hexdigest()
    if not INSTALLED.exists() or INSTALLED.read_text() != wanted:
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=NODE_DIR, check=True, timeout=300)
        INSTALLED.write_text(wanted)
    return node


def scenario(node: str, transport: str, endpoint: str, project: str) -> dict[str, Any]:
    """What tests/node/scenario.js saw doing its rounds in `project`."""
    done = subprocess.run([node, str(NODE_DIR / "scenario.js"), transport, endpoint, project],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert not done.stderr, done.stderr  # no warnings either (such as a credentials lookup)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def error_info(reason: str) -> dict[str, Any]:
    return {"type": "google.rpc.ErrorInfo", "reason": reason, "domain": "opqueue",
            "metadata": {}}


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_google_gax_client(node: str, stack: Stack, transport: str) -> None:
    api = Api(stack.base_url, f"p-{uuid.uuid4().hex[:12]}")
    endpoint = stack.grpc_target if transport == "grpc" else f"127.0.0.1:{stack.port}"
    report = scenario(node, transport, endpoint, api.project)

    succeeded = report["succeeded"]
    assert succeeded["value"] == {"slept": 0.3, "steps": 3}
    assert succeeded["got"] == {"done": True, "value": {"slept": 0.3, "steps": 3}}
    assert (succeeded["metadata"]["state"], succeeded["metadata"]["labels"],
            succeeded["metadata"]["progressPercent"]) == ("SUCCEEDED", {"kind": "slow"}, 100)

    failed = report["failed"]
    assert (failed["code"], failed["message"]) == (5, "no luck")
    assert failed["status"] == {"code": 5, "details": [error_info("DEMO_FAILURE")]}
    assert failed["metadata"]["state"] == "FAILED"
    assert api.get(failed["name"])["error"]["code"] == 5

    cancelled = report["cancelled"]
    assert cancelled["code"] == 1
    assert cancelled["status"] == {"code": 1, "details": [error_info("OPERATION_CANCELLED")]}
    assert (cancelled["metadata"]["state"], cancelled["metadata"]["requestedCancellation"]) == (
        "CANCELLED", True)

    # Pages of two through a filter, newest first, as REST lists them (less the deleted one).
    pages = report["pages"]
    assert [len(page) for page in pages] == [2, 1]
    listed = [name for page in pages for name in page]
    over_rest = api.http.get(f"{api.base}/v1/projects/{api.project}/operations",
                             params={"filter": 'metadata.job = "demo.sleep"'}, timeout=10)
    assert [op["name"] for op in over_rest.json()["operations"]] == [
        name for name in listed if name != succeeded["name"]]
    assert succeeded["name"] in listed

    assert report["deleted"] == {"code": 5, "reason": "OPERATION_NOT_FOUND", "domain": "opqueue"}


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_the_documented_code_runs(node: str, stack: Stack, transport: str) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Node (google-gax)", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"^```js\n(.*?)^```", section, re.S | re.M)
    endpoint = stack.grpc_target if transport == "grpc" else f"127.0.0.1:{stack.port}"
    env = {**os.environ, "OPQUEUE_TRANSPORT": transport, "OPQUEUE_ENDPOINT": endpoint,
           "OPQUEUE_PROJECT": f"p-{uuid.uuid4().hex[:12]}"}
    done = subprocess.run([node, "-e", code], cwd=NODE_DIR, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    printed = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert json.loads(printed.pop("result")) == {"slept": 0.5, "steps": 5}
    assert printed == {"state": "SUCCEEDED", "listed": "true"}
