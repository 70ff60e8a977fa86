"""gRPC calls served by the REST routes they map to, in process, through the Flask app.

A call becomes the HTTP request its HTTP rule describes (path variables from the request,
every other field as the JSON body or the query), with the caller's credentials and address,
and runs through the very app the `web` process serves: the same auth guard, validation,
limits, store, submission path, page tokens and change listener. The JSON answer is parsed
strictly into the method's response message; a Google error envelope becomes the gRPC
status with its `google.rpc.Status` (details included).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from urllib.parse import unquote, urlencode

# mypy finds the stubs of this namespace package only when imported by its full path.
import google.rpc.status_pb2 as status_pb2  # noqa: PLR0402
import grpc
from flask import Flask
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from werkzeug.test import EnvironBuilder, run_wsgi_app

import opqueue.v1.operation_metadata_pb2  # noqa: F401 - resolves every Any we answer with
from core.codes import Code
from core.errors import Internal, OperationError
from rpc.routes import HttpRoute

log = logging.getLogger(__name__)

# Metadata that travels on as the HTTP headers of the same name: the caller's credentials.
CREDENTIAL_HEADERS = ("authorization", "x-goog-api-key")


class RpcFailure(Exception):
    """A call that ends with `status` (a `google.rpc.Status`) instead of a response."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status

    @classmethod
    def of(cls, error: OperationError) -> RpcFailure:
        """The failure that `error` would be over HTTP."""
        return cls(_status(error.status()))


class Transcoder:
    """Serves RPCs by the REST routes of `routes`, through `app`."""

    def __init__(self, app: Flask, routes: Mapping[str, HttpRoute]) -> None:
        self._app = app
        self._routes = routes

    def call(self, method: MethodDescriptor, request: Message,
             context: grpc.ServicerContext) -> Message:
        """The response to `request`, or `RpcFailure` with the error HTTP would answer."""
        route = self._routes[method.full_name]
        try:
            path, fields = route.bind(request)
        except OperationError as exc:
            raise RpcFailure.of(exc) from None
        metadata = dict(context.invocation_metadata())
        builder = EnvironBuilder(
            path=path, method=route.verb,
            query_string=None if route.body else urlencode(fields),
            data=json.dumps(fields) if route.body else None,
            content_type="application/json" if route.body else None,
            headers=[(name, str(metadata[name])) for name in CREDENTIAL_HEADERS
                     if name in metadata],
            environ_base={"REMOTE_ADDR": peer_address(context.peer())})
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        answer, status, _ = run_wsgi_app(self._app, environ, buffered=True)
        body = json.loads(b"".join(answer))
        if not status.startswith("200 "):
            raise RpcFailure(_status_of_envelope(body["error"]))
        response_class = message_factory.GetMessageClass(method.output_type)
        try:
            return json_format.ParseDict(body, response_class(), ignore_unknown_fields=False)
        except json_format.ParseError:
            log.exception("the answer to %s does not parse as %s", method.full_name,
                          method.output_type.full_name)
            raise RpcFailure.of(Internal("internal error", reason="INTERNAL_ERROR")) from None


def peer_address(peer: str) -> str:
    """The IP address in a gRPC peer (`ipv4:127.0.0.1:5000`, `ipv6:%5B::1%5D:5000`), or ''."""
    kind, _, rest = peer.partition(":")
    if kind not in {"ipv4", "ipv6"}:
        return ""  # unix sockets and the like
    return unquote(rest).rpartition(":")[0].strip("[]")


def _status_of_envelope(error: dict[str, object]) -> status_pb2.Status:
    """The `google.rpc.Status` of a Google error envelope (whose `code` is the HTTP one)."""
    return _status({"code": int(Code[str(error["status"])]),
                    "message": error["message"], "details": error["details"]})


def _status(sent: dict[str, object]) -> status_pb2.Status:
    status: status_pb2.Status = json_format.ParseDict(sent, status_pb2.Status())
    return status
