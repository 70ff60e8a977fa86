"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app.auth import public
from app.openapi import documented
from app.services import services
from core.errors import Unavailable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
@documented("ServingStatus", operation_id="CheckLiveness")
def healthz() -> dict[str, Any]:
    """200 while the process is up; says so when anonymous access is on."""
    return _status()


@bp.get("/readyz")
@public
@documented("ServingStatus", operation_id="CheckReadiness")
def readyz() -> dict[str, Any]:
    """200 only when the operation store and the broker both answer."""
    svc = services()
    failing = []
    try:
        svc.store.redis.ping()
    except Exception:
        failing.append("redis")
    try:
        svc.dispatcher.ping()
    except Exception:
        failing.append("broker")
    if failing:
        raise Unavailable(f"not ready: {' and '.join(failing)} unreachable",
                          reason="NOT_READY", metadata={"unreachable": ",".join(failing)})
    return _status()


def _status() -> dict[str, Any]:
    status: dict[str, Any] = {"status": "SERVING"}
    if services().authorizer.anonymous:  # so it cannot run unnoticed
        status["warning"] = ("anonymous access is on (OPQUEUE_INSECURE_ALLOW_ANONYMOUS): "
                             "anyone who reaches this port may use the API")
        status["anonymousAccess"] = True
    return status
