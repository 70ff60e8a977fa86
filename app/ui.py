"""`/ui`: the dashboard, a page for people watching a project's operations live.

The page and its files hold no data, so they are `@public`. Everything the page shows it
fetches from the API in the browser, sending the API key the person enters in the page as
`Authorization: Bearer` (never in a URL). Live changes come from
`GET /v1/projects/{p}/operations:watch`, read with `fetch` and a small server-sent-events
parser instead of `EventSource`, which cannot send headers (see `assets/ui/dashboard.js`).
The files ship in the package (`app/assets/ui/`, `app/templates/ui/`): no CDN, no build step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, redirect, render_template, send_from_directory, url_for
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response as BaseResponse

from app.auth import public
from core.codes import Code
from core.names import JOB_NAME, OPERATION_ID, PROJECT_ID
from core.states import State

bp = Blueprint("ui", __name__)

ASSETS = Path(__file__).parent / "assets" / "ui"
# The files the asset routes serve, by suffix; written out so that a system's MIME table
# cannot change them (a module script is refused unless it is served as JavaScript).
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# The dashboard loads only its own files and talks only to this origin; data reaches the
# page as text, and this policy would block a script that got in anyway.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'",
    "connect-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
])


@bp.get("/ui")
@public
def dashboard() -> Response:
    """The dashboard: a project's operations, live."""
    return page(render_template("ui/index.html", tables=dashboard_tables(),
                                # In an HTML `pattern` (the regex `v` flag) a literal '-'
                                # in a character class must be escaped.
                                project_pattern=PROJECT_ID.pattern.replace("-]", r"\-]")),
                CONTENT_SECURITY_POLICY)


def dashboard_tables() -> dict[str, Any]:
    """The domain's tables the dashboard's script needs, from where each is defined."""
    return {
        "states": [state.value for state in State],
        "codes": {code.value: code.name for code in Code},
        "patterns": {"projectId": PROJECT_ID.pattern, "jobName": JOB_NAME.pattern,
                     "operationId": OPERATION_ID.pattern},
    }


@bp.get("/")
@public
def home() -> BaseResponse:
    """The service's root sends a browser to the dashboard."""
    return redirect(url_for("ui.dashboard"))


@bp.get("/ui/assets/<path:filename>")
@public
def asset(filename: str) -> Response:
    """One of the dashboard's files (script, style sheet, icon)."""
    return send_asset(ASSETS, filename)


def page(html: str, policy: str) -> Response:
    """An HTML page with the headers every page of ours carries."""
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


def send_asset(folder: Path, filename: str) -> Response:
    """`folder/filename` if it is a file of a kind we serve, else NOT_FOUND.

    `send_from_directory` refuses paths that leave `folder`; responses carry an ETag and
    `Cache-Control: no-cache`, so browsers revalidate and never run a stale script.
    """
    media_type = MEDIA_TYPES.get(Path(filename).suffix)
    if media_type is None:
        raise NotFound()
    response = send_from_directory(folder, filename, mimetype=media_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
