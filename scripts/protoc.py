"""protoc (the pinned grpcio-tools) over every published proto, with the imports resolved.

`make protos` runs it with `--python_out=. --pyi_out=. --grpc_python_out=.`; tests run it with
`--include_imports --descriptor_set_out=FILE` to get exactly what a code generator sees.
googleapis-common-protos ships google/longrunning/operations.proto as operations_proto.proto,
so that one file is mapped back to its real import path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import google.api
import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def published() -> list[str]:
    """Every .proto opqueue publishes, relative to protos/."""
    return sorted(str(path.relative_to(PROTO_ROOT)) for path in PROTO_ROOT.rglob("*.proto"))


def run(args: list[str]) -> int:
    """protoc `args` over every published proto; its exit status."""
    common = os.path.dirname(os.path.dirname(google.api.__path__[0]))
    well_known = os.path.join(grpc_tools.__path__[0], "_proto")
    return int(protoc.main([
        "protoc", f"-I{PROTO_ROOT}",
        f"-Igoogle/longrunning/operations.proto={common}/google/longrunning/"
        "operations_proto.proto",
        f"-I{common}", f"-I{well_known}", *args, *published()]))


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(run(sys.argv[1:]))
