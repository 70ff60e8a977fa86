"""The dashboard (`/ui`) and the API docs (`/docs`) in a real headless Chromium.

Debian's `/usr/bin/chromium`, driven by Playwright (the Python package only: it never
downloads a browser here). Where either is missing these tests say so and are skipped;
`make test` installs Chromium where it can. Progress happens step by step (`test.steps`
behind a gate the test opens), and every wait is Playwright's auto-waiting `expect`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from app.api_keys import Role, new_key
from tests.stack import ROOT, Api, Stack, open_gate, running_stack

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT = ROOT / "docs" / "dashboard.png"
TIMEOUT_MS = 20_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium; the tests that need it are skipped where it cannot run."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium "
                    "package where it runs as root with apt-get")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed: pip install -e '.[server,dev]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"])
        yield launched
        launched.close()


class Watched:
    """A page and what it did: errors, and every request it sent."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.responses: list[tuple[str, int, dict[str, str]]] = []  # url, status, request headers
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: self.errors.append(message.text)
                if message.type == "error" else None)
        page.on("request", lambda request: self.requests.append(
            (request.resource_type, request.url, request.headers)))
        page.on("response", lambda response: self.responses.append(
            (response.url, response.status, response.request.headers)))
        # Anything for another host is refused (and shows up in `foreign`).
        page.route("**/*", lambda route: route.continue_()
                   if route.request.url.startswith(base_url) else route.abort())
        page.set_default_timeout(TIMEOUT_MS)

    def foreign(self, base_url: str) -> list[str]:
        return [url for _, url, _ in self.requests
                if not url.startswith(base_url) and not url.startswith("data:")]

    def documents(self) -> int:
        return sum(1 for kind, _, _ in self.requests if kind == "document")


@pytest.fixture
def watched(browser: Browser, stack: Stack) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1360, "height": 760})
    page = Watched(context.new_page(), stack.base_url)
    yield page
    context.close()
    assert not page.foreign(stack.base_url)
    assert not page.errors


def row(page: Page, name: str) -> Locator:
    return page.locator(f'#rows tr[data-name="{name}"]')


def test_the_dashboard_follows_progress_live_and_cancels(watched: Watched, stack: Stack,
                                                          api: Api) -> None:
    from playwright.sync_api import expect

    page = watched.page
    page.goto(f"{stack.base_url}/ui?project={api.project}")
    expect(page.locator("#empty")).to_be_visible()
    gate = uuid.uuid4().hex
    steps = api.run("test.steps", {"gate": gate, "steps": 4})["name"]
    shown = row(page, steps)
    expect(shown.locator(".job")).to_have_text("test.steps")
    for percent in ("25", "50", "75", "100"):
        open_gate(stack, gate)
        expect(shown.locator("progress")).to_have_attribute("value", percent)
        expect(shown.locator(".percent")).to_have_text(f"{percent}%")
    expect(shown.locator(".state")).to_have_text("SUCCEEDED")
    expect(shown.locator(".message")).to_have_text("step 4 of 4")
    expect(shown.locator(".cancel")).to_be_hidden()
    # The progress came over the event stream: the page listed once, and once more when
    # the fresh stream began (no polling, no reloads).
    listings = [url for kind, url, _ in watched.requests
                if kind == "fetch" and "/operations?" in url]
    assert 1 <= len(listings) <= 2, listings

    blocked = api.run("test.gate", {"gate": uuid.uuid4().hex})["name"]
    waiting = row(page, blocked)
    expect(waiting.locator(".state")).to_have_text("RUNNING")
    waiting.locator("button.cancel").click()
    expect(waiting.locator(".state")).to_have_text("CANCELLED")
    assert api.get(blocked)["metadata"]["state"] == "CANCELLED"
    assert api.get(blocked)["error"]["code"] == 1
    # Every change arrived over the one page load: no reloads.
    assert watched.documents() == 1
    assert {url.split("?")[0] for kind, url, _ in watched.requests if kind == "fetch"} >= {
        f"{stack.base_url}/v1/projects/{api.project}/operations:watch"}

    # The detail panel: response, error, metadata.
    shown.locator("button.open").click()
    detail = page.locator("#detail")
    expect(detail.locator("#detail-name")).to_have_text(steps)
    expect(detail.locator("#detail-response-value")).to_have_text(
        json.dumps({"steps": 4}, indent=2))
    expect(detail.locator("#detail-error")).to_be_hidden()
    waiting.locator("button.open").click()
    expect(detail.locator("#detail-name")).to_have_text(blocked)
    expect(detail.locator("#detail-error-summary")).to_contain_text("CANCELLED (1)")
    expect(detail.locator("#detail-response")).to_be_hidden()
    assert f"operation={blocked.rsplit('/', 1)[1]}" in page.url

    # Filters, by state and by job, are the API's own (AIP-160) filters.
    page.select_option("#state-filter", "CANCELLED")
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(waiting).to_be_visible()
    page.select_option("#state-filter", "")
    page.select_option("#job-filter", "test.steps")
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(shown).to_be_visible()
    listed = [url for kind, url, _ in watched.requests
              if kind == "fetch" and "/operations?" in url]
    assert any("metadata.job+%3D+%22test.steps%22" in url for url in listed), listed


def test_the_first_page_shows_it_is_loading_not_that_there_is_nothing(
        watched: Watched, stack: Stack, api: Api) -> None:
    from playwright.sync_api import Route, expect

    page = watched.page
    listing = f"/v1/projects/{api.project}/operations"
    held: list[Route] = []  # the first listing, answered only once the page was looked at

    def is_listing(url: str) -> bool:
        return urlsplit(url).path == listing

    def hold(route: Route) -> None:
        held.append(route)

    page.route(is_listing, hold)
    with page.expect_request(lambda request: is_listing(request.url)):
        page.goto(f"{stack.base_url}/ui?project={api.project}")
    expect(page.locator("#loading")).to_be_visible()
    expect(page.locator("#empty")).to_be_hidden()
    assert held, "the listing was not held"
    page.unroute(is_listing)
    for route in held:
        route.continue_()
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#loading")).to_be_hidden()


def test_a_filtered_view_follows_operations_in_and_out(watched: Watched, stack: Stack,
                                                       api: Api) -> None:
    from playwright.sync_api import expect

    page = watched.page
    page.goto(f"{stack.base_url}/ui?project={api.project}&state=RUNNING")
    expect(page.locator("#state-filter")).to_have_value("RUNNING")
    gate = uuid.uuid4().hex
    name = api.run("test.steps", {"gate": gate, "steps": 1})["name"]
    expect(row(page, name).locator(".state")).to_have_text("RUNNING")
    open_gate(stack, gate)
    # Done, it no longer matches the filter and leaves the page.
    expect(row(page, name)).to_have_count(0)


def test_the_project_is_chosen_in_the_page_and_kept_in_its_address(
        watched: Watched, stack: Stack, api: Api) -> None:
    from playwright.sync_api import expect

    page = watched.page
    name = api.wait(api.run("demo.sleep", {"seconds": 0})["name"])["name"]
    page.goto(f"{stack.base_url}/ui")
    expect(page.locator("#project")).to_have_value("demo")
    page.fill("#project", api.project)
    page.click("#project-form button[type=submit]")
    expect(row(page, name).locator(".state")).to_have_text("SUCCEEDED")
    assert f"project={api.project}" in page.url
    # An address with an operation opens it.
    page.goto(f"{stack.base_url}/ui?project={api.project}&operation={name.rsplit('/', 1)[1]}")
    expect(page.locator("#detail-name")).to_have_text(name)
    expect(page.locator("#detail-response-value")).to_contain_text('"slept"')
    page.click("#detail-close")
    expect(page.locator("#detail")).to_be_hidden()
    assert "operation=" not in page.url


def test_load_more_follows_the_page_token(watched: Watched, stack: Stack, api: Api) -> None:
    from playwright.sync_api import expect

    page = watched.page
    names = [api.run("demo.sleep", {"seconds": 0})["name"] for _ in range(53)]
    page.goto(f"{stack.base_url}/ui?project={api.project}")
    expect(page.locator("#rows tr")).to_have_count(50)
    expect(page.locator("#rows tr").first).to_have_attribute("data-name", names[-1])
    page.click("#more")
    expect(page.locator("#rows tr")).to_have_count(53)
    expect(page.locator("#rows tr").last).to_have_attribute("data-name", names[0])
    expect(page.locator("#more")).to_be_hidden()


def test_the_screenshot_for_the_readme(watched: Watched, stack: Stack) -> None:
    """A project with operations in every state, one of them open: docs/dashboard.png."""
    from playwright.sync_api import expect

    page = watched.page
    api = Api(stack.base_url, "demo")
    running, halfway = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        api.wait(api.run("demo.sleep", {"seconds": 0.2, "steps": 2},
                         labels={"team": "ml"})["name"])
        api.wait(api.run("demo.fail", {"code": "NOT_FOUND",
                                       "message": "no such image"})["name"])
        cancelled = api.run("test.gate", {"gate": uuid.uuid4().hex})["name"]
        api.state_becomes(cancelled, "RUNNING")
        api.http.post(f"{api.base}/v1/{cancelled}:cancel", timeout=10)
        api.state_becomes(cancelled, "CANCELLED")
        api.run("test.steps", {"gate": running, "steps": 5})
        open_gate(stack, running)
        selected = api.run("test.steps", {"gate": halfway, "steps": 8},
                           labels={"team": "billing"})["name"]
        page.goto(f"{stack.base_url}/ui")  # the default project is demo
        open_gate(stack, halfway, times=5)
        expect(row(page, selected).locator("progress")).to_have_attribute("value", "62")
        row(page, selected).locator("button.open").click()
        expect(page.locator("#detail-details-value")).to_contain_text('"step": 5')
        expect(page.locator("#connection")).to_have_text("live")
        page.set_viewport_size({"width": 1360, "height": 580})
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
        # The README's copy is tracked: refreshed only when asked, so that a test run
        # leaves the work tree clean.
        if not SCREENSHOT.exists() or os.environ.get("OPQUEUE_UPDATE_SCREENSHOT"):
            SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(ARTIFACTS / "dashboard.png", SCREENSHOT)
    finally:  # let the two step jobs finish, so they hold no worker slot
        open_gate(stack, running, times=5)
        open_gate(stack, halfway, times=8)


OWNER, OWNER_ENTRY = new_key("dashboard", Role.SUBMITTER, ["secure"])


@pytest.fixture(scope="module")
def keyed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    keys = json.dumps({"keys": [OWNER_ENTRY]})
    # Streams end every 2 s here, so the page has to resume them (Last-Event-ID).
    with running_stack(tmp_path_factory.mktemp("keyed-ui"), workers=("u1",),
                       OPQUEUE_API_KEYS=keys, OPQUEUE_MAX_WATCH_SECONDS="2") as stack:
        yield stack


def test_the_dashboard_works_with_an_api_key(browser: Browser, keyed_stack: Stack) -> None:
    """With keys configured, the key entered in the page authorizes every call, the event
    stream and its resumptions included, and it never appears in a URL."""
    from playwright.sync_api import expect

    context = browser.new_context()
    watched = Watched(context.new_page(), keyed_stack.base_url)
    page = watched.page
    page.goto(f"{keyed_stack.base_url}/ui?project=secure")
    expect(page.locator("#notice")).to_contain_text("needs an API key")
    expect(page.locator("#connection")).to_have_attribute("data-status", "refused")

    page.fill("#api-key", OWNER)
    before = len(watched.requests)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#notice")).to_be_hidden()
    api = Api(keyed_stack.base_url, "secure")
    api.http.headers["Authorization"] = f"Bearer {OWNER}"
    gate = uuid.uuid4().hex
    name = api.run("test.steps", {"gate": gate, "steps": 2})["name"]
    shown = row(page, name)
    expect(shown.locator(".state")).to_have_text("RUNNING")
    stream = f"{keyed_stack.base_url}/v1/projects/secure/operations:watch"
    with page.expect_request(lambda request: request.url == stream
                             and "last-event-id" in request.headers) as resumed:
        pass
    assert resumed.value.headers["authorization"] == f"Bearer {OWNER}"
    open_gate(keyed_stack, gate)
    expect(shown.locator("progress")).to_have_attribute("value", "50")
    blocked = api.run("test.gate", {"gate": uuid.uuid4().hex})["name"]
    expect(row(page, blocked).locator(".state")).to_have_text("RUNNING")
    row(page, blocked).locator("button.cancel").click()
    expect(row(page, blocked).locator(".state")).to_have_text("CANCELLED")
    open_gate(keyed_stack, gate)
    expect(shown.locator(".state")).to_have_text("SUCCEEDED")

    assert all(headers.get("authorization") == f"Bearer {OWNER}"
               for kind, _, headers in watched.requests[before:] if kind == "fetch")
    assert all(OWNER not in url for _, url, _ in watched.requests)
    assert OWNER not in page.url
    assert OWNER not in keyed_stack.log("web")
    assert [status for _, status, headers in watched.responses
            if "authorization" in headers and status >= 400] == []
    # The browser logs the calls refused before the key was entered, and nothing else.
    assert all("status of 401" in error for error in watched.errors), watched.errors
    assert not watched.foreign(keyed_stack.base_url)
    context.close()


def test_the_docs_page_renders_the_api_document(watched: Watched, stack: Stack) -> None:
    from playwright.sync_api import expect

    page = watched.page
    page.goto(f"{stack.base_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("opqueue")
    cancel = page.get_by_text("/v1/projects/{project}/operations/{operation}:cancel")
    expect(cancel).to_be_visible()
    cancel.click()  # opens the operation: parameters, the request body, the responses
    expect(page.locator(".opblock.is-open .parameters")).to_contain_text("operation")
    # "Try it out" calls this server.
    health = page.locator(".opblock", has=page.get_by_text("/healthz", exact=True))
    health.locator(".opblock-summary").click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    expect(health.locator(".live-responses-table")).to_contain_text('"SERVING"')
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs.png"))
