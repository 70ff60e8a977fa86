"""`/docs`: the API document (`/openapi.json`) as a browsable page, rendered by Swagger UI.

Swagger UI's files come from the `flask-swagger-ui` package (its `dist/` is Swagger UI's
own build, Apache-2.0; version 5, which reads OpenAPI 3.1); we use only those files, not
its blueprint, so the page is `@public` like the document it shows and loads nothing from
elsewhere. `assets/docs/docs.js` starts Swagger UI on the document.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Response, render_template

from app.auth import public
from app.ui import page, send_asset

bp = Blueprint("docs", __name__)

ASSETS = Path(__file__).parent / "assets" / "docs"
SWAGGER_UI = Path(str(files("flask_swagger_ui") / "dist"))
# Swagger UI's files the page uses; everything else under /docs/assets is ours.
VENDORED = frozenset({"swagger-ui.css", "swagger-ui-bundle.js"})
# Swagger UI draws some icons from data: URLs; "Try it out" calls this origin only.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'", "script-src 'self'", "style-src 'self'",
    "img-src 'self' data:", "connect-src 'self'", "base-uri 'none'", "form-action 'none'",
    "frame-ancestors 'none'",
])


@bp.get("/docs")
@public
def docs() -> Response:
    """The API document, browsable."""
    return page(render_template("docs/index.html"), CONTENT_SECURITY_POLICY)


@bp.get("/docs/assets/<path:filename>")
@public
def asset(filename: str) -> Response:
    """One of the docs page's files: Swagger UI's, or the script that starts it."""
    return send_asset(SWAGGER_UI if filename in VENDORED else ASSETS, filename)
