"""Webhooks reach only what was checked (issue #13): embedded IPv4 unwrapped, multicast and
reserved ranges refused, one resolution per delivery (real loopback receivers), HTTPS to a
pinned address still checked against the name, and the delivery log never shows a URL's
query or user info."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from core import record
from core.config import Settings
from core.errors import InvalidArgument
from core.states import Event
from core.store import OperationStore
from core.webhooks import Target, WebhookPolicy, redacted
from tests.conftest import run_job
from tests.fakes import RecordingDispatcher
from tests.receiver import Receiver
from tests.stack import eventually
from workers import webhook_client
from workers.webhooks import WebhookSender

LOOPBACK_ALLOWED = WebhookPolicy({}, (ipaddress.ip_network("127.0.0.0/8"),))


@pytest.mark.parametrize("url", [
    "http://[::127.0.0.1]/hook",  # IPv4-compatible
    "http://[::ffff:10.0.0.1]/hook",  # IPv4-mapped: it is 10.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    "http://[64:ff9b::808:808]/hook",  # NAT64 itself is reserved unless allowed
    "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
    "http://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
    "http://224.0.0.1/hook", "http://239.255.255.250/hook", "http://[ff02::1]/hook",
    "http://240.0.0.1/hook", "http://255.255.255.255/hook", "http://[::]/hook",
])
def test_embedded_private_multicast_and_reserved_addresses_are_refused(url: str) -> None:
    with pytest.raises(InvalidArgument, match="only public addresses"):
        LOOPBACK_ALLOWED.check_url(url)


@pytest.mark.parametrize("url", ["http://8.8.8.8/h", "http://[2001:4860:4860::8888]/h",
                                 "http://[2002:808:808::1]/h", "http://127.0.0.1:9/h"])
def test_public_and_allowed_addresses_pass(url: str) -> None:
    target = LOOPBACK_ALLOWED.check_url(url)
    assert target.addresses


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.example/in?token=s3cret", "https://hooks.example/in?…"),
    ("https://user:pw@hooks.example:8443/in#frag", "https://hooks.example:8443/in"),
    ("http://[2001:db8::1]:81/p?a=b", "http://[2001:db8::1]:81/p?…"),
])
def test_urls_are_shown_without_query_or_user_info(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert redacted(shown) == shown


@pytest.fixture
def app(settings: Settings, redis: fakeredis.FakeRedis, dispatcher: RecordingDispatcher) -> Flask:
    return create_app(replace(settings, webhook_secrets=json.dumps({"*": "s"}),
                              webhook_allowed_networks=("127.0.0.1/32",)),
                      redis=redis, dispatcher=dispatcher)  # type: ignore[arg-type]


def finish(store: OperationStore, name: str) -> None:
    ident = name.rsplit("/", 1)[1]
    store.apply("demo", ident, Event.START)
    store.apply("demo", ident, Event.SUCCEED, {record.RESPONSE: "1"})


def test_a_delivery_connects_to_the_address_that_was_checked(
        client: FlaskClient, store: OperationStore, app: Flask,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver() as checked:
        port = int(checked.url("/").rsplit(":", 1)[1].strip("/"))
        with Receiver(host="127.0.0.2", port=port) as rebound:
            answers: list[str] = []
            resolve = socket.getaddrinfo

            def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
                # hooks.test points at the allowed address while it is checked (once by
                # the API, once by the delivery), and inside the network afterwards.
                if host != "hooks.test":
                    return resolve(host, *args, **kwargs)
                answers.append("127.0.0.1" if len(answers) < 2 else "127.0.0.2")
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[-1], port))]

            monkeypatch.setattr(socket, "getaddrinfo", rebinding)
            url = f"http://hooks.test:{port}/hook?token=s3cret"
            name = run_job(client, notify={"url": url}).get_json()["name"]
            finish(store, name)
            settings = app.extensions["opqueue"].settings
            sender = WebhookSender(SimpleNamespace(settings=settings, store=store))
            try:
                sender.pump()
                eventually(lambda: store.redis.llen(store.keys.deliveries(
                    "demo", name.rsplit("/", 1)[1])), what="the delivery to be logged")
            finally:
                sender.close()
            assert [request.path for request in checked.received] == ["/hook?token=s3cret"]
            assert checked.received[0].headers["Host"] == f"hooks.test:{port}"
            assert rebound.received == []
            assert answers == ["127.0.0.1", "127.0.0.1"]  # resolved once per check only
    log = client.get(f"/v1/{name}/webhookDeliveries").get_json()["deliveries"]
    assert [(entry["outcome"], entry["url"]) for entry in log] == [
        ("delivered", f"http://hooks.test:{port}/hook?…")]


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` (and its key), trusted by nothing but this test."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def tls_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """An HTTPS receiver on 127.0.0.1 whose certificate names `hooks.test`; its port."""
    cert_file, key_file = self_signed(tmp_path, "hooks.test")
    monkeypatch.setattr(webhook_client.certifi, "where", lambda: str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    with Receiver(tls=context) as receiver:
        yield int(receiver.url("/").rsplit(":", 1)[1].strip("/"))


def test_a_pinned_https_delivery_still_verifies_the_name(tls_receiver: int) -> None:
    def to(name: str) -> Target:
        return Target("https", name, tls_receiver, "/hook", ("127.0.0.1",))

    assert webhook_client.post(to("hooks.test"), b"{}", {}, timeout=5) == 200
    with pytest.raises(webhook_client.DELIVERY_ERRORS, match=r"'other\.test' doesn't match"):
        webhook_client.post(to("other.test"), b"{}", {}, timeout=5)
