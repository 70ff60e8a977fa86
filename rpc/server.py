"""The gRPC server: both services, health checking and reflection on one port."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent import futures
from dataclasses import dataclass

import grpc
from flask import Flask
from google.protobuf import duration_pb2, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from app import create_app
from core.codes import Code
from core.config import Settings
from core.errors import Internal
from rpc.routes import OPERATIONS, SERVICES, routes
from rpc.transcoder import RpcFailure, Transcoder, peer_address

log = logging.getLogger(__name__)
access = logging.getLogger("rpc.access")

WAIT_OPERATION = OPERATIONS.methods_by_name["WaitOperation"].full_name
GRACE_SECONDS = 10.0  # calls in flight get this long to finish on shutdown
# How long before the caller's deadline a WaitOperation answers, so the answer arrives.
DEADLINE_MARGIN_SECONDS = 0.25  # covers the call's own work around the wait on a busy host
# grpcio reports a call without a deadline as one this far off, or further.
NO_DEADLINE_SECONDS = 24 * 60 * 60.0


@dataclass
class RpcServer:
    """A started gRPC server and its health service (SERVING until `stop`)."""

    server: grpc.Server
    health: health.HealthServicer
    port: int

    def stop(self, grace: float) -> None:
        """Tell health checkers first, let calls in flight finish within `grace` seconds."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def start(settings: Settings, app: Flask | None = None) -> RpcServer:
    """Serve `settings`' deployment on `settings.host:settings.grpc_port`."""
    transcoder = Transcoder(app or create_app(settings), routes())
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_threads,
                                   thread_name_prefix="opqueue-grpc"),
        # Room above the HTTP body limit, so that the transcoded JSON meets that limit (and
        # its error) first; twice as large a message is refused by gRPC itself.
        options=[("grpc.max_receive_message_length", 2 * settings.max_request_bytes),
                 # Several processes share the port only when asked to; otherwise a port
                 # in use is an error at start, not a silently shared listener.
                 ("grpc.so_reuseport", int(settings.grpc_processes > 1))])
    for service in SERVICES:
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            service.full_name,
            {method.name: _handler(transcoder, method) for method in service.methods})])
    checks = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    names = [service.full_name for service in SERVICES]
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
    server.start()
    for name in ("", *names):
        checks.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RpcServer(server, checks, port)


def serve(settings: Settings) -> None:
    """One server process: serve on `OPQUEUE_HOST:GRPC_PORT` until SIGTERM or SIGINT."""
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    server = start(settings)
    log.info("gRPC listening on %s:%d (pid %d)", settings.host, server.port, os.getpid())
    stopping.wait()
    log.info("gRPC stopping (pid %d)", os.getpid())
    server.stop(GRACE_SECONDS)


def _handler(transcoder: Transcoder,
             method: MethodDescriptor) -> grpc.RpcMethodHandler[Message, Message]:
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)

    def answer(request: Message, context: grpc.ServicerContext) -> Message:
        started = time.perf_counter()
        if method.full_name == WAIT_OPERATION:
            _wait_within_deadline(request, context)
        try:
            response = transcoder.call(method, request, context)
        except RpcFailure as failure:
            status = failure.status
        except Exception:
            log.exception("unexpected error in %s", method.full_name)
            status = RpcFailure.of(Internal("internal error", reason="INTERNAL_ERROR")).status
        else:
            _access_log(context, method, "OK", started)
            return response
        _access_log(context, method, Code(status.code).name, started)
        context.abort_with_status(rpc_status.to_status(status))
        raise AssertionError("abort_with_status returned")  # it always raises

    return grpc.unary_unary_rpc_method_handler(
        answer, request_deserializer=request_class.FromString,
        response_serializer=response_class.SerializeToString)


def _access_log(context: grpc.ServicerContext, method: MethodDescriptor, code: str,
                started: float) -> None:
    """One line per call, as gunicorn's access log has one per request (no metadata: keys)."""
    access.info("%s %s %s %.1fms", peer_address(context.peer()), method.full_name, code,
                (time.perf_counter() - started) * 1000)


def _wait_within_deadline(request: Message, context: grpc.ServicerContext) -> None:
    """A WaitOperation returns before the caller's deadline, while its answer still counts."""
    remaining = context.time_remaining()
    if remaining is None or remaining > NO_DEADLINE_SECONDS:
        return
    latest = max(remaining - DEADLINE_MARGIN_SECONDS, 0.0)
    timeout: duration_pb2.Duration = request.timeout  # type: ignore[attr-defined]
    if not request.HasField("timeout") or timeout.ToNanoseconds() > latest * 1e9:
        timeout.FromNanoseconds(int(latest * 1e9))
