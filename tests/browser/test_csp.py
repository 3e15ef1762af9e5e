"""The Content-Security-Policy holds in a real browser: Chromium reports no violation on any
page, signed out or in, while htmx swaps fragments and the stream delivers, or on the call page.

Each page gets a listener for `securitypolicyviolation` before any of its own scripts run; the
first test shows that the listener does catch what the policy blocks."""

import io

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
    window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} `
        + `(${e.sourceFile || location.pathname}:${e.lineNumber})`);
});
"""
STREAM_OPEN = """
window.__streamOpen = false;
document.addEventListener("htmx:sseOpen", () => { window.__streamOpen = true; });
"""


def watched(browse) -> Page:
    page = browse.page()
    page.add_init_script(WATCH)
    page.add_init_script(STREAM_OPEN)
    return page


def violations(page: Page) -> list[str]:
    return [f"{page.url}: {v}" for v in page.evaluate("window.__csp")]


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


def test_the_listener_reports_what_the_policy_blocks(browse, make):
    page = watched(browse)
    page.goto("/login")
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.__ran = true";
            document.body.append(script);
        }"""
    )
    page.wait_for_function("window.__csp.length > 0")
    assert page.evaluate("window.__ran") is None  # blocked, not run
    assert "script-src" in violations(page)[0]
    browse.errors.clear()  # Chromium logs the blocked script as a console error too


def test_no_page_breaks_the_policy(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")  # Ada, the first account, is the admin
    private = make.private(ada, bob)
    group = make.group(ada, [bob], name="Book club")
    make.message(bob, group, "**hello** from Bob")
    found = []

    page = watched(browse)
    for path in ("/login", "/register", "/offline"):
        page.goto(path)
        found += violations(page)

    browse.log_in(page, make.email(ada))
    sent = browse.post(
        page,
        f"/conversations/{group}/messages",
        multipart={
            "body": "a photo",
            "file": {"name": "p.png", "mimeType": "image/png", "buffer": photo()},
        },
        headers={"Accept": "application/json"},
    )
    assert sent.status == 201, sent.text()
    for path in (
        "/conversations",
        "/conversations/new",
        f"/conversations/{private}",
        "/account",
        "/admin",
        "/share",
    ):
        page.goto(path)
        found += violations(page)

    # A conversation, live: the stream opens, a message is sent through the composer (an
    # htmx swap), the photo's thumbnail loads, and Bob's next message arrives on the stream.
    page.goto(f"/conversations/{group}")
    page.wait_for_function("() => window.__streamOpen === true")
    expect(page.locator("img[src*='/thumbnail']").first).to_be_visible()
    page.locator("#composer textarea").fill("from the composer")
    page.locator("#composer").get_by_role("button", name="Send").click()
    expect(page.locator("#messages").get_by_text("from the composer")).to_be_visible()
    make.message(bob, group, "on the stream")
    expect(page.locator("#messages").get_by_text("on the stream")).to_be_visible()
    found += violations(page)

    # The call page: its modules, the fake camera's video, the ringing partial.
    started = browse.post(
        page,
        f"/conversations/{private}/calls",
        form={"type": "video"},
        headers={"Accept": "application/json"},
    )
    assert started.status == 201, started.text()
    page.goto(f"/calls/{started.json()['id']}")
    expect(page.locator("video").first).to_be_attached()
    page.wait_for_timeout(500)
    found += violations(page)

    assert found == []
    assert browse.errors == []
