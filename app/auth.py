"""Who may call what: every request passes `guard` before its view runs.

A view declares what it needs next to its route with `@requires(Role.SUBMITTER)` or
`@public`; undeclared views need a reader. `guard` is the HTTP adapter of the
transport-neutral decision in `app/access.py`; the key a request acts as is `caller()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from app.api_keys import ApiKey, Role
from app.services import services

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
    g.caller = services().authorizer.authorize(
        _presented_key(), (request.view_args or {}).get("project"), required,
        request.remote_addr or "", host=request.headers.get("Host", ""),
        origin=request.headers.get("Origin"))


def caller() -> ApiKey:
    """The key the current request acts as (set by `guard`)."""
    key: ApiKey = g.caller
    return key


def _presented_key() -> str:
    return presented_key(request.headers.get("Authorization", ""),
                         request.headers.get("x-goog-api-key", ""))


def presented_key(authorization: str, api_key: str) -> str:
    """The API key a caller presented, from its `Authorization: Bearer` or `x-goog-api-key`
    header."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return api_key.strip()
