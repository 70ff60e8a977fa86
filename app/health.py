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
    """200 while the process is up."""
    return {"status": "SERVING"}


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
    return {"status": "SERVING"}
