"""Webhooks: which URLs may be called, per-project signing secrets, and the signature.

A delivery carries `Opqueue-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
`"<t>." + body`, keyed by the project's secret, and `Opqueue-Delivery` (the same on every
attempt of one delivery) so receivers can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.addresses import Network, refused_address
from core.config import Settings
from core.errors import FailedPrecondition, InvalidArgument

SIGNATURE_HEADER = "Opqueue-Signature"
DELIVERY_HEADER = "Opqueue-Delivery"
EVENT_HEADER = "Opqueue-Event"
EVENTS = ("done", "progress")


@dataclass(frozen=True)
class WebhookPolicy:
    """Per-project signing secrets and the private networks webhooks may still reach."""

    secrets: Mapping[str, str]
    networks: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookPolicy:
        """Secrets from `OPQUEUE_WEBHOOK_SECRETS(_FILE)`, networks from
        `OPQUEUE_WEBHOOK_ALLOWED_NETWORKS`."""
        if settings.webhook_secrets_file:
            text = Path(settings.webhook_secrets_file).read_text()
        else:
            text = settings.webhook_secrets or "{}"
        try:
            secrets = json.loads(text)
            if not isinstance(secrets, dict) or not all(
                    isinstance(value, str) for value in secrets.values()):
                raise TypeError
        except (ValueError, TypeError):
            raise ValueError('webhook secrets must be a JSON object {"project": "secret"}'
                             ) from None
        return cls(secrets, tuple(ipaddress.ip_network(cidr, strict=False)
                                  for cidr in settings.webhook_allowed_networks))

    def secret(self, project: str) -> bytes:
        """The project's signing secret; FAILED_PRECONDITION if it has none."""
        found = self.secrets.get(project, self.secrets.get("*"))
        if not found:
            raise FailedPrecondition(f"project {project} has no webhook secret configured, so "
                                     "its webhooks could not be signed",
                                     reason="NO_WEBHOOK_SECRET")
        return found.encode()

    def check_url(self, url: str) -> Target:
        """The URL's target once every address its host resolves to is checked;
        INVALID_ARGUMENT unless `url` is http(s) to public (or allowed private) addresses.

        Deliveries connect to the checked addresses only, never resolving the name again,
        so a name that points elsewhere by then (DNS rebinding) gains nothing.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad("notify.url must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise _bad("notify.url must not carry credentials; webhooks are signed instead")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            found = [str(info[4][0]) for info in socket.getaddrinfo(
                parts.hostname, port, type=socket.SOCK_STREAM)]
        except (OSError, ValueError):
            raise _bad(f"notify.url host {parts.hostname!r} does not resolve") from None
        addresses = tuple(dict.fromkeys(address.split("%", 1)[0] for address in found))
        for address in addresses:
            refused = refused_address(ipaddress.ip_address(address), self.networks)
            if refused is not None:
                raise _bad(f"notify.url reaches {refused}, a private, loopback, link-local, "
                           "multicast or reserved address; only public addresses may be "
                           "called")
        return Target(parts.scheme, parts.hostname, port,
                      urlunsplit(("", "", parts.path or "/", parts.query, "")), addresses)


@dataclass(frozen=True)
class Target:
    """Where a checked webhook URL is delivered: its checked addresses, never its name."""

    scheme: str
    host: str  # as in the URL: the Host header, TLS server name and certificate check
    port: int
    path: str  # with its query
    addresses: tuple[str, ...]

    @property
    def authority(self) -> str:
        """The `Host` header value."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def redacted(url: str) -> str:
    """`url` without its query, fragment or user info, to show to readers."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    query = "?…" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The `Opqueue-Signature` header value for `body`."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes, tolerance: int = 300) -> bool:
    """What a receiver does: True if `header` signs `body` and is at most `tolerance` s old."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, body, stamp).split("v1=", 1)[1]
    return abs(time.time() - stamp) <= tolerance and hmac.compare_digest(
        expected, parts.get("v1", ""))


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument.for_fields({"notify.url": message}, message=message)
