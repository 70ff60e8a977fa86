"""One webhook POST: to the address that was checked, within a total deadline.

The connection goes to an address `WebhookPolicy.check_url` approved, never to a fresh
resolution of the name; HTTPS still sends the name (SNI) and verifies the certificate
against it. The whole exchange (connecting, sending, the receiver's status line and
headers) must finish by the deadline: a timer cuts the connection then, so a receiver that
answers a byte at a time cannot hold a delivery thread. The answer's body is never read.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time

import certifi
import urllib3.exceptions
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.ssl_match_hostname import CertificateError

from core.webhooks import Target

# What a failed exchange may raise, from the socket up to urllib3 (which reports a
# certificate for another name with its own CertificateError, a ValueError).
DELIVERY_ERRORS = (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError,
                   CertificateError)


class DeliveryTimeout(TimeoutError):
    """The receiver did not answer within the delivery's deadline."""


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body` to `target` and return the HTTP status of its answer.

    Tries each checked address in turn until one connects. Raises `DeliveryTimeout` past
    `timeout` seconds in all, or one of `DELIVERY_ERRORS`.
    """
    deadline = time.monotonic() + timeout
    late = DeliveryTimeout(f"no answer within {timeout:g}s")
    failure: Exception = late
    for address in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        connection = _connection(target, address, remaining)
        was_cut = threading.Event()
        cut = threading.Timer(remaining, _cut, (connection, was_cut))
        cut.start()
        try:
            try:
                connection.connect()
            except DELIVERY_ERRORS as exc:
                failure = exc
                continue
            connection.request("POST", target.path, body=body,
                               headers={**headers, "Host": target.authority},
                               preload_content=False)
            status = connection.getresponse().status
        except DELIVERY_ERRORS:
            if not was_cut.is_set():
                raise
            status = 0
        finally:
            cut.cancel()
            connection.close()
        if was_cut.is_set():  # a cut mid-headers reads as their end: that is no answer
            raise late
        return status
    raise late if time.monotonic() >= deadline else failure


def _connection(target: Target, address: str, timeout: float) -> HTTPConnection:
    if target.scheme == "https":
        return HTTPSConnection(address, target.port, timeout=timeout,
                               server_hostname=target.host, assert_hostname=target.host,
                               cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    return HTTPConnection(address, target.port, timeout=timeout)


def _cut(connection: HTTPConnection, was_cut: threading.Event) -> None:
    """End the exchange now: a blocked read in the delivering thread returns at once."""
    was_cut.set()
    sock = connection.sock
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed: the exchange ended meanwhile
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
