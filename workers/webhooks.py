"""Webhook delivery, on a few threads of each worker's main process.

The transition script puts a delivery in the outbox when an operation that asked for
webhooks reaches one of its events. The supervisor's tick calls `pump`, which claims due
deliveries (at most as many as there are idle threads) and POSTs the operation's current
JSON, signed, to its URL. A failed attempt is retried with exponential backoff until
OPQUEUE_WEBHOOK_MAX_ATTEMPTS; every attempt is recorded in the operation's delivery log.
Receivers never hold up jobs: deliveries run outside the job pool.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests

from core.errors import OperationError
from core.names import operation_name
from core.outbox import Delivery, Outbox
from core.timestamps import format_timestamp, now_micros
from core.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, WebhookPolicy, sign
from core.wire import dump_operation

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300


class WebhookSender:
    """Delivers due webhooks from the outbox."""

    def __init__(self, celery: Any) -> None:
        settings = celery.settings
        self._store = celery.store
        self._outbox = Outbox(self._store.redis, self._store.keys, settings.retention_seconds)
        self._policy = WebhookPolicy.from_settings(settings)
        self._timeout = settings.webhook_timeout_seconds
        self._max_attempts = settings.webhook_max_attempts
        self._threads = settings.webhook_threads
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="opqueue-webhook")
        self._busy = 0
        self._lock = threading.Lock()

    def pump(self) -> None:
        """Start the deliveries that are due, as many as there are idle threads."""
        with self._lock:
            idle = self._threads - self._busy
        if idle <= 0:
            return
        for member, delivery in self._outbox.claim(int(time.time() * 1000), idle):
            with self._lock:
                self._busy += 1
            self._pool.submit(self._deliver, member, delivery)

    def close(self) -> None:
        """Stop taking deliveries; claimed ones not finished come back after their claim."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _deliver(self, member: str, delivery: Delivery) -> None:
        try:
            self._attempt(member, delivery)
        except Exception:  # a thread must survive anything; the claim makes it come back
            log.exception("webhook delivery %s crashed; it will be retried", delivery.delivery)
        finally:
            with self._lock:
                self._busy -= 1

    def _attempt(self, member: str, delivery: Delivery) -> None:
        name = operation_name(delivery.project, delivery.id)
        operation = self._store.get(delivery.project, delivery.id)
        if operation is None or not operation.notify_url:
            self._outbox.done(member)  # deleted or expired meanwhile: nothing to send
            return
        url = operation.notify_url
        outcome: dict[str, Any] = {"time": format_timestamp(now_micros()), "url": url}
        try:
            self._policy.check_url(url)  # again: the name may point elsewhere by now
            body = json.dumps(dump_operation(operation), separators=(",", ":")).encode()
            answer = requests.post(url, data=body, timeout=self._timeout, allow_redirects=False,
                                   headers=self._headers(delivery, body))
            outcome["status"] = answer.status_code
            if 200 <= answer.status_code < 300:
                self._outbox.log(delivery, {**outcome, "outcome": "delivered"})
                self._outbox.done(member)
                log.info("delivered %s webhook of %s", delivery.event, name)
                return
            outcome["error"] = f"the receiver answered {answer.status_code}"
        except OperationError as exc:  # refused by policy: no point in trying again
            self._outbox.log(delivery, {**outcome, "error": exc.message, "outcome": "failed"})
            self._outbox.done(member)
            return
        except requests.RequestException as exc:
            outcome["error"] = type(exc).__name__
        self._failed(member, delivery, outcome, urlsplit(url).hostname or "")

    def _headers(self, delivery: Delivery, body: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json", "User-Agent": "opqueue-webhooks/1",
                SIGNATURE_HEADER: sign(self._policy.secret(delivery.project), body),
                DELIVERY_HEADER: delivery.delivery, EVENT_HEADER: delivery.event}

    def _failed(self, member: str, delivery: Delivery, outcome: dict[str, Any],
                host: str) -> None:
        name = operation_name(delivery.project, delivery.id)
        if delivery.attempt >= self._max_attempts:
            self._outbox.log(delivery, {**outcome, "outcome": "failed"})
            self._outbox.done(member)
            log.warning("gave up on the %s webhook of %s to %s after %d attempts",
                        delivery.event, name, host, delivery.attempt)
            return
        backoff = min(MAX_BACKOFF_SECONDS, 2 ** (delivery.attempt - 1))
        self._outbox.log(delivery, {**outcome, "outcome": "retrying"})
        self._outbox.retry(member, delivery, int((time.time() + backoff) * 1000))
        log.info("%s webhook of %s to %s failed (%s); retrying in %ds", delivery.event, name,
                 host, outcome["error"], backoff)
