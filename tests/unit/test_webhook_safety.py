"""Webhooks reach only what was checked (issue #13): embedded IPv4 unwrapped, multicast and
reserved ranges refused, one resolution per delivery (real loopback receivers), and the
delivery log never shows a URL's query or user info."""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from core import record
from core.config import Settings
from core.errors import InvalidArgument
from core.states import Event
from core.store import OperationStore
from core.webhooks import WebhookPolicy, redacted
from tests.conftest import run_job
from tests.fakes import RecordingDispatcher
from tests.receiver import Receiver
from tests.stack import eventually
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
