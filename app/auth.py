"""Who may call what: every request passes `guard` before its view runs.

A view declares what it needs next to its route with `@requires(Role.SUBMITTER)` or
`@public`; undeclared views need a reader. The checks run in this order, before anything
is looked up, so a refusal never depends on whether an operation exists and changes
nothing: the key (UNAUTHENTICATED), the project (PERMISSION_DENIED), the role
(PERMISSION_DENIED), the key's rate (RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request

from app.api_keys import Role
from app.services import services
from core.errors import PermissionDenied, Unauthenticated

View = TypeVar("View", bound=Callable[..., Any])
PUBLIC = "public"


def requires(role: Role) -> Callable[[View], View]:
    """Mark a view as needing `role` on the request's project."""
    def mark(view: View) -> View:
        view.required_role = role  # type: ignore[attr-defined]
        return view
    return mark


def public(view: View) -> View:
    """Mark a view as open to anyone (health checks, the API document)."""
    view.required_role = PUBLIC  # type: ignore[attr-defined]
    return view


def guard() -> None:
    """Refuse the request unless its caller may make it."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:  # no such route: the 404 says nothing about anyone's data
        return
    required = getattr(view, "required_role", Role.READER)
    if required == PUBLIC:
        return
    svc = services()
    if svc.keyring.empty:
        if svc.settings.insecure_allow_anonymous or _is_loopback(request.remote_addr):
            return
        raise PermissionDenied(
            "this server has no API keys configured, so it serves only local clients",
            reason="NO_API_KEYS_CONFIGURED")
    presented = _presented_key()
    if not presented:
        raise Unauthenticated("send an API key as 'Authorization: Bearer KEY' or "
                              "'x-goog-api-key: KEY'", reason="API_KEY_MISSING")
    key = svc.keyring.identify(presented)
    if key is None:
        raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
    project = (request.view_args or {}).get("project")
    if project is not None and not key.grants(project):
        raise PermissionDenied(f"API key {key.id!r} may not act in this project",
                               reason="PROJECT_NOT_GRANTED")
    if not key.may(required):
        raise PermissionDenied(f"API key {key.id!r} is a {key.role.value} and may not do this",
                               reason="ROLE_NOT_ALLOWED")
    limit = key.rate_per_second
    svc.rate_limiter.admit(key.id, svc.settings.rate_limit_per_second if limit is None
                           else limit)


def _presented_key() -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("x-goog-api-key", "").strip()


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
