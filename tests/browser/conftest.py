"""Real-browser fixtures: the app served over HTTP and Debian's Chromium driven by Playwright.

The server runs the `app` fixture of tests/conftest.py, so pages, the `make` factory and the
test read and write the same database, which is emptied before each test.
"""

import contextlib
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    APIResponse,
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
# The browser test files that run in the second worker's Chromium.
SECOND_BROWSER = {"test_calls.py", "test_axe.py"}
# Seconds Browse.close() gives Chromium to close one browser context.
CLOSE_LIMIT = 20


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run on two pytest-xdist workers (`--dist loadgroup`), each with one
    Chromium for the session: the calls and the accessibility checks (half the browser time)
    on one, the rest on the other. On one worker they were the suite's longest path (290 s
    of a 305 s run here) while the other workers sat idle for the last 80 s."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            heavy = item.path.name in SECOND_BROWSER
            item.add_marker(pytest.mark.xdist_group("browser-2" if heavy else "browser"))


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


def _browser_pids() -> set[int]:
    """Chromium's main processes (the ones Playwright drives through a pipe) now running."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        main = not any(arg.startswith(b"--type=") for arg in argv)
        if main and b"chromium" in argv[0] and b"--remote-debugging-pipe" in argv:
            pids.add(int(entry.name))
    return pids


class Chromium:
    """The session's browser; launched again when a test had to kill it (Browse.close)."""

    def __init__(self, playwright: Playwright):
        self.playwright = playwright
        self.browser: Browser | None = None
        self.pids: set[int] = set()

    def get(self) -> Browser:
        if self.browser is None or not self.browser.is_connected():
            before = _browser_pids()
            self.browser = self.playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            self.pids = _browser_pids() - before
        return self.browser

    def kill(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        if self.browser is not None and self.browser.is_connected():
            self.browser.close()


@pytest.fixture(scope="session")
def chromium(playwright) -> Iterator[Chromium]:
    chromium = Chromium(playwright)
    yield chromium
    chromium.close()


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

    def __init__(self, chromium: Chromium | None, base_url: str):
        # None: only log_in() is wanted, on a page opened elsewhere.
        self.chromium = chromium
        self.browser = chromium.get() if chromium else None
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

    def post(self, page: Page, path: str, **kwargs) -> APIResponse:
        """A POST from `page`'s browser (its cookies) with the page's CSRF token, as the page's
        own scripts send one."""
        token = page.locator('meta[name="csrf-token"]').get_attribute("content")
        headers = {"X-CSRFToken": token, **kwargs.pop("headers", {})}
        return page.request.post(path, headers=headers, **kwargs)

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
        # Now and then Chromium never answers the request to dispose of a context (seen in a
        # full CI run: the suite waited on context.close() until it was killed). Past the
        # limit the browser is killed, which ends the wait, and the next test gets a new one.
        for context in self.contexts:
            watchdog = threading.Timer(CLOSE_LIMIT, self.chromium.kill)
            watchdog.start()
            try:
                context.close()
            except PlaywrightError:
                if self.browser.is_connected():
                    raise
            finally:
                watchdog.cancel()
            if not self.browser.is_connected():
                warnings.warn(
                    f"Chromium did not close a browser context within {CLOSE_LIMIT} s; "
                    "it was killed and is launched again",
                    stacklevel=1,
                )
                break


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
