"""The HTTP rule of every RPC: which REST route serves a gRPC call, and with what.

The same rules are published in protos/opqueue_v1.yaml (the service config) and in the
`google.api.http` options of protos/opqueue/v1/jobs.proto; a test holds all three, and
/openapi.json, to the same routes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

from google.api import annotations_pb2, http_pb2
from google.longrunning import operations_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from core.errors import InvalidArgument
from opqueue.v1 import jobs_pb2

OPERATIONS: ServiceDescriptor = operations_pb2.DESCRIPTOR.services_by_name["Operations"]
JOBS: ServiceDescriptor = jobs_pb2.DESCRIPTOR.services_by_name["Jobs"]
SERVICES = (OPERATIONS, JOBS)

# `{field}` or `{field=pattern}` in a path template.
_VARIABLE = re.compile(r"\{(\w+)(?:=([^}]+))?\}")


@dataclass(frozen=True)
class HttpRoute:
    """One `google.api.HttpRule`: verb, path template and body (`*`: every other field)."""

    verb: str
    template: str
    body: str = ""

    def bind(self, request: Message) -> tuple[str, dict[str, Any]]:
        """The path for `request`, and its other fields as proto3 JSON (body or query)."""
        path = self.template
        rest = json_format.MessageToDict(request)
        for variable in _VARIABLE.finditer(self.template):
            field, pattern = variable[1], variable[2] or "*"
            value = getattr(request, field)
            if not _segments(pattern).fullmatch(value):
                expected = "a name without '/'" if pattern == "*" else f"of the form {pattern}"
                raise InvalidArgument.for_fields({field: f"must be {expected}, got {value!r}"})
            rest.pop(request.DESCRIPTOR.fields_by_name[field].json_name, None)
            path = path.replace(variable[0], quote(value, safe="/"))
        return path, rest

    @classmethod
    def from_rule(cls, rule: http_pb2.HttpRule) -> HttpRoute:
        """The route of a `google.api.http` option."""
        verb = rule.WhichOneof("pattern")
        assert verb is not None, rule
        assert verb != "custom", rule
        return cls(verb.upper(), getattr(rule, verb), rule.body)


# google/longrunning/operations.proto binds `/v1/{name=operations/**}`; opqueue's operations
# live in projects, so its own rules (the service config's) replace those.
_OPERATIONS_ROUTES = {
    "ListOperations": HttpRoute("GET", "/v1/{name=projects/*}/operations"),
    "GetOperation": HttpRoute("GET", "/v1/{name=projects/*/operations/*}"),
    "DeleteOperation": HttpRoute("DELETE", "/v1/{name=projects/*/operations/*}"),
    "CancelOperation": HttpRoute("POST", "/v1/{name=projects/*/operations/*}:cancel", "*"),
    "WaitOperation": HttpRoute("POST", "/v1/{name=projects/*/operations/*}:wait", "*"),
}


@cache
def routes() -> Mapping[str, HttpRoute]:
    """Every RPC served, by full method name (`google.longrunning.Operations.GetOperation`)."""
    table = {method.full_name: _OPERATIONS_ROUTES[method.name]
             for method in OPERATIONS.methods}
    for method in JOBS.methods:
        table[method.full_name] = HttpRoute.from_rule(
            method.GetOptions().Extensions[annotations_pb2.http])
    return table


@cache
def _segments(pattern: str) -> re.Pattern[str]:
    """A path pattern (`projects/*/operations/*`) as a regular expression."""
    parts = ("[^/]+" if part == "*" else ".+" if part == "**" else re.escape(part)
             for part in pattern.split("/"))
    return re.compile("/".join(parts))
