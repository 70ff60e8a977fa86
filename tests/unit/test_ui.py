"""The dashboard (`/ui`) and docs (`/docs`) pages: served, public, self-contained."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from dataclasses import replace
from fnmatch import fnmatch
from pathlib import Path

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app, docs, openapi, ui
from app.api_keys import Role, new_key
from core.codes import Code
from core.config import Settings
from core.jobs import registry
from core.names import new_operation_id
from core.states import State
from tests.fakes import RecordingDispatcher
from tests.stack import ROOT

APP = ROOT / "app"
PAGES = ["/ui", "/docs"]
ASSETS = {
    "/ui/assets/dashboard.js": "text/javascript",
    "/ui/assets/dashboard.css": "text/css",
    "/ui/assets/favicon.svg": "image/svg+xml",
    "/docs/assets/docs.js": "text/javascript",
    "/docs/assets/docs.css": "text/css",
    "/docs/assets/swagger-ui-bundle.js": "text/javascript",
    "/docs/assets/swagger-ui.css": "text/css",
}
OUR_FILES = sorted(path for path in [*(APP / "assets").rglob("*"), *(APP / "templates").rglob("*")]
                   if path.is_file())
# `src`/`href` attributes, CSS `url(...)`, and JavaScript `import ... from` / `import(...)`.
REFERENCES = re.compile(r"""(?:\b(?:src|href)\s*=\s*["']?|url\(\s*["']?|\bfrom\s+["']|"""
                        r"""\bimport\s*\(\s*["'])([^"')\s>]+)""")
KEY, KEY_ENTRY = new_key("viewer", Role.READER, ["demo"])


@pytest.fixture
def keyed(settings: Settings, redis: fakeredis.FakeRedis,
          dispatcher: RecordingDispatcher) -> FlaskClient:
    """An app that needs an API key for everything that is not public."""
    app = create_app(replace(settings, api_keys=json.dumps({"keys": [KEY_ENTRY]})),
                     redis=redis, dispatcher=dispatcher,  # type: ignore[arg-type]
                     registry=registry.load_modules(settings.job_modules))
    return app.test_client()


@pytest.mark.parametrize("path", PAGES)
def test_the_pages_are_served_as_html_with_a_strict_policy(client: FlaskClient,
                                                          path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = dict(directive.split(" ", 1) for directive in
                  response.headers["Content-Security-Policy"].split("; "))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"  # no inline script, no other host
    assert policy["connect-src"] == "'self'"
    assert policy["form-action"] == "'none'"  # no form can carry the key anywhere


def test_the_root_sends_a_browser_to_the_dashboard(keyed: FlaskClient) -> None:
    response = keyed.get("/")  # public: a browser has no key to send
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui"


@pytest.mark.parametrize(("path", "media_type"), ASSETS.items())
def test_every_asset_is_served_with_its_content_type(client: FlaskClient, path: str,
                                                     media_type: str) -> None:
    with client.get(path) as response:
        assert response.status_code == 200
        assert response.mimetype == media_type
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.data
        # Revalidated by ETag, so a browser never runs a stale script after an upgrade.
        assert response.headers["Cache-Control"] == "no-cache"
    with client.get(path, headers={"If-None-Match": response.headers["ETag"]}) as again:
        assert again.status_code == 304


@pytest.mark.parametrize("path", [*PAGES, *ASSETS])
def test_the_pages_and_assets_need_no_key_though_the_api_does(keyed: FlaskClient,
                                                              path: str) -> None:
    with keyed.get(path) as response:
        assert response.status_code == 200
    refused = keyed.get("/v1/projects/demo/operations")
    assert refused.status_code == 401
    assert keyed.get("/v1/projects/demo/operations",
                     headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


@pytest.mark.parametrize("path", [
    "/ui/assets/missing.js",
    "/ui/assets/../ui.py",
    "/ui/assets/..%2fui.py",
    "/ui/assets/%2e%2e/auth.py",
    "/ui/assets/dashboard.js.map",
    "/docs/assets/index.html",  # Swagger UI's files beyond the two the page uses
    "/docs/assets/swagger-ui.js",
    "/docs/assets/../../templates/ui/index.html",
    "/ui/",
])
def test_nothing_else_is_served(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["status"] == "NOT_FOUND"


def test_the_page_references_only_its_own_files(client: FlaskClient) -> None:
    html = client.get("/ui").get_data(as_text=True)
    references = set(REFERENCES.findall(html))
    assert references == {"/ui/assets/favicon.svg", "/ui/assets/dashboard.css",
                          "/ui/assets/dashboard.js", "/docs"}
    for reference in references:
        with client.get(reference) as response:
            assert response.status_code == 200, reference


def test_the_docs_page_loads_swagger_ui_from_here(client: FlaskClient) -> None:
    html = client.get("/docs").get_data(as_text=True)
    references = set(REFERENCES.findall(html))
    assert references == {"/ui/assets/favicon.svg", "/docs/assets/swagger-ui.css",
                          "/docs/assets/docs.css", "/docs/assets/swagger-ui-bundle.js",
                          "/docs/assets/docs.js", "/ui", "/openapi.json"}
    assert 'data-document="/openapi.json"' in html
    for reference in references:
        with client.get(reference) as response:
            assert response.status_code == 200, reference


@pytest.mark.parametrize("path", OUR_FILES, ids=lambda path: str(path.relative_to(APP)))
def test_no_file_of_ours_refers_to_another_host(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"(?<![\w/:])//[\w.-]+\.[a-z]{2,}/", text), "protocol-relative URL"
    for reference in REFERENCES.findall(text):
        assert not re.match(r"[a-z][a-z0-9+.-]*:", reference, re.I), reference
    # The one absolute URL allowed: SVG's XML namespace, which is a name, not a fetch.
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls


def test_the_dashboard_never_writes_data_as_html() -> None:
    # ...nor uses EventSource, which could not send the key (dashboard.js reads the stream).
    script = (APP / "assets" / "ui" / "dashboard.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "new EventSource("):
        assert sink not in script, sink


def test_the_dashboard_reads_the_domain_tables_from_the_page(client: FlaskClient) -> None:
    html = client.get("/ui").get_data(as_text=True)
    block = re.search(r'<script type="application/json" id="tables">(.*?)</script>', html)
    assert block is not None
    tables = json.loads(block.group(1))
    assert tables["states"] == [state.value for state in State]
    assert {int(number): name for number, name in tables["codes"].items()} == {
        code.value: code.name for code in Code}
    assert re.fullmatch(tables["patterns"]["operationId"], new_operation_id())
    assert not re.fullmatch(tables["patterns"]["projectId"], "Demo")
    script = (APP / "assets" / "ui" / "dashboard.js").read_text()
    for written_twice in ("PENDING", "INVALID_ARGUMENT", "[0-9a-f]", "[a-z0-9"):
        assert written_twice not in script, written_twice


@pytest.mark.parametrize("script", sorted((APP / "assets").rglob("*.js")),
                         ids=lambda path: path.name)
def test_our_scripts_parse(script: Path) -> None:
    """A syntax check without a browser, where Node.js is at hand."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on PATH to check JavaScript syntax with")
    checked = subprocess.run([node, "--check", str(script)], capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0, checked.stderr


def test_the_vendored_swagger_ui_reads_openapi_3_1() -> None:
    version = (docs.SWAGGER_UI / "VERSION").read_text().strip()
    assert int(version.lstrip("v").split(".")[0]) >= 5, version
    for name in docs.VENDORED:
        assert (docs.SWAGGER_UI / name).is_file(), name


def test_the_pages_are_not_in_the_api_document(app: Flask, client: FlaskClient) -> None:
    pages = {rule.rule for rule in app.url_map.iter_rules() if not openapi.is_api_route(rule)}
    assert pages == {"/", "/ui", "/ui/assets/<path:filename>", "/docs",
                     "/docs/assets/<path:filename>", "/static/<path:filename>"}
    paths = client.get("/openapi.json").get_json()["paths"]
    assert not [path for path in paths if path.startswith(("/ui", "/docs"))]


def test_every_asset_and_template_ships_in_the_package() -> None:
    """Installed without the source tree (the Docker image), the pages still work."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["app"]
    for path in OUR_FILES:
        relative = path.relative_to(APP).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in package_data), relative
    assert {ui.ASSETS, docs.ASSETS} <= {path.parent for path in OUR_FILES}
