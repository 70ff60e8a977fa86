"""The dependencies one API instance works with, wired by `create_app`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from app.api_keys import KeyRing
from app.changes import ChangeListener
from app.page_tokens import PageTokens
from app.rate_limiter import RateLimiter
from core.config import Settings
from core.jobs import JobRegistry
from core.outbox import Outbox
from core.store import OperationStore
from core.webhooks import WebhookPolicy
from workers.dispatch import Dispatcher
from workers.submission import Submitter


@dataclass(frozen=True)
class Services:
    """Everything one API instance works with."""

    settings: Settings
    store: OperationStore
    registry: JobRegistry
    dispatcher: Dispatcher
    submitter: Submitter
    page_tokens: PageTokens
    changes: ChangeListener
    keyring: KeyRing
    rate_limiter: RateLimiter
    webhooks: WebhookPolicy
    outbox: Outbox


def services() -> Services:
    """The services of the app handling the current request."""
    found: Services = current_app.extensions["opqueue"]
    return found
