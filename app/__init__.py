"""The HTTP API: `create_app` wires settings, store, job registry, dispatcher and submitter."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, Request

from app import (
    auth,
    docs,
    errors,
    health,
    jobs,
    metrics,
    openapi,
    operations,
    request_limits,
    ui,
    watch,
)
from app.access import Authorizer
from app.api_keys import KeyRing
from app.changes import ChangeListener
from app.fast_reads import FastReads
from app.long_requests import LongRequests
from app.page_tokens import PageTokens
from app.rate_limiter import RateLimiter
from app.services import Services, services
from core import logs
from core.config import Settings
from core.errors import InvalidArgument
from core.jobs import JobRegistry
from core.jobs import registry as default_registry
from core.outbox import Outbox
from core.store import operation_store
from core.webhooks import WebhookPolicy
from workers.dispatch import Dispatcher
from workers.submission import Submitter


class ApiRequest(Request):
    """Malformed or too deeply nested JSON is an INVALID_ARGUMENT that says what is wrong."""

    def get_json(self, force: bool = False, silent: bool = False,
                 cache: bool = True) -> Any:
        try:
            data = super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:  # nested past what the parser can take: far past our limit
            raise InvalidArgument("the request body nests too deeply",
                                  reason="JSON_TOO_DEEP") from None
        request_limits.check_depth(data, services().settings)
        return data

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        reason = str(e).splitlines()[0][:200] if e else "not JSON"
        raise InvalidArgument(f"the request body is not valid JSON: {reason}",
                              reason="MALFORMED_JSON")


def create_app(settings: Settings | None = None, redis: redis.Redis | None = None,
               dispatcher: Dispatcher | None = None,
               registry: JobRegistry | None = None) -> Flask:
    """Build the API; every dependency can be injected (tests pass fakes)."""
    settings = settings or Settings.from_env()
    logs.configure(settings)
    app = Flask(__name__)
    app.request_class = ApiRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    store = operation_store(settings, redis)
    authorizer = Authorizer(KeyRing.from_settings(settings), settings,
                            RateLimiter(store.redis, store.keys))
    authorizer.announce()
    dispatcher = dispatcher or Dispatcher.from_settings(settings)
    webhooks = WebhookPolicy.from_settings(settings)
    app.extensions["opqueue"] = Services(
        settings=settings,
        store=store,
        registry=registry or default_registry.load_modules(settings.job_modules, settings.job_path),
        dispatcher=dispatcher,
        submitter=Submitter(settings, store, dispatcher, webhooks),
        page_tokens=PageTokens(store.shared_secret),
        changes=ChangeListener(store.redis, store.keys,
                               sharded=settings.redis_mode == "cluster"),
        authorizer=authorizer,
        long_requests=LongRequests(store.redis, store.keys, settings),
        webhooks=webhooks,
        outbox=Outbox(store.redis, store.keys, settings.retention_seconds),
    )
    metrics.measure_requests(app)
    app.before_request(request_limits.check_head)
    app.before_request(auth.guard)
    app.before_request(request_limits.require_json_body)
    errors.register_error_handlers(app)
    for blueprint in (operations.bp, watch.bp, jobs.bp, health.bp, openapi.bp, metrics.bp,
                      ui.bp, docs.bp):
        app.register_blueprint(blueprint)
    app.wsgi_app = FastReads(app, app.extensions["opqueue"])  # type: ignore[method-assign]
    return app
