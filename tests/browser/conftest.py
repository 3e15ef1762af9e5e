"""Real-browser fixtures: the app served over HTTP and Debian's Chromium driven by Playwright.

The server runs the `app` fixture of tests/conftest.py, so pages, the `make` factory and the
test read and write the same database, which is emptied before each test.
"""

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError
from werkzeug.serving import make_server

from tests.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    # A fake microphone and camera, and no permission prompt: recording and calls can run.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    # Playwright cannot download its own browsers here, so a missing Chromium is a broken
    # setup to fix, never a reason to skip.
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Browser tests need Chromium at {CHROMIUM}: run `apt-get install -y chromium`.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def chromium(playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


class InFlight:
    """WSGI middleware counting the requests being answered, event streams aside (they last
    until the client goes). A page closing still sends a request or two (a tab reports that it
    is hidden): the server waits for them before the test's database goes away, or their
    connection would come back to a pool already disposed."""

    def __init__(self, app):
        self.app = app
        self.count = 0
        self.lock = threading.Condition()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/stream":
            return self.app(environ, start_response)
        with self.lock:
            self.count += 1
        try:
            # Read out here: a streamed body would otherwise be answered after the count.
            body = self.app(environ, start_response)
            try:
                return list(body)
            finally:
                if hasattr(body, "close"):
                    body.close()
        finally:
            with self.lock:
                self.count -= 1
                self.lock.notify_all()

    def wait_idle(self, timeout: float) -> None:
        with self.lock:
            self.lock.wait_for(lambda: self.count == 0, timeout)


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app on a free local port, served from a background thread; yields its base URL."""
    answering = InFlight(app)
    server = make_server("127.0.0.1", 0, answering, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    # Requests accepted just before the shutdown may not have reached the app yet.
    time.sleep(0.05)
    answering.wait_idle(timeout=10)


class Browse:
    """Opens pages in fresh browser contexts (one per simulated person) and records
    everything a page reports as broken: console errors and uncaught exceptions. Chromium
    reports Content-Security-Policy violations and failed loads as console errors.
    """

    def __init__(self, browser: Browser, base_url: str):
        self.browser = browser
        self.base_url = base_url
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    def page(self, javascript: bool = True, width: int = 1280, height: int = 800) -> Page:
        context = self.browser.new_context(
            base_url=self.base_url,
            java_script_enabled=javascript,
            viewport={"width": width, "height": height},
        )
        self.contexts.append(context)
        return self._watch(context.new_page())

    def tab(self, page: Page) -> Page:
        """Another tab of the browser `page` is in: the same cookies, so the same person."""
        return self._watch(page.context.new_page())

    def _watch(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.page.url if message.page else '?'}: {message.text}")

    def log_in(self, page: Page, email: str, password: str = PASSWORD) -> None:
        """Log in through the form, as a person would, and land on the conversation list."""
        page.goto("/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/conversations")

    def close(self) -> None:
        # Leave every page first, with a time limit: its pagehide work (hanging up a call,
        # saying the tab is hidden) runs while the server is still there, and a page stuck in
        # a call or a stream cannot hold up closing its context.
        for context in self.contexts:
            for page in context.pages:
                with contextlib.suppress(PlaywrightError):
                    page.goto("about:blank", timeout=10_000)
        for context in self.contexts:
            context.close()


@pytest.fixture
def browse(chromium, live_server) -> Iterator[Browse]:
    browse = Browse(chromium, live_server)
    yield browse
    # Contexts close before the server stops, so no request is cut off mid-way.
    browse.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
