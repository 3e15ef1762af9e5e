"""Calls in the browser, before media: the ringing box on the other person's open page."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

STREAM_OPEN = """
window.__streamOpen = false;
document.addEventListener("htmx:sseOpen", () => { window.__streamOpen = true; });
"""


def test_ringing_shows_the_callee_answer_and_decline_and_the_caller_hang_up(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    pages = {}
    for user in (bob, ada):
        page = browse.page()
        page.add_init_script(STREAM_OPEN)
        browse.log_in(page, make.email(user))
        page.goto(f"/conversations/{chat}")
        page.wait_for_function("() => window.__streamOpen === true")
        pages[user] = page

    pages[ada].get_by_role("button", name="Video call").click()
    expect(pages[ada]).to_have_url(re.compile(r"/calls/\d+$"))
    caller_box = pages[ada].locator(".call")
    expect(caller_box.get_by_role("button", name="Hang up")).to_be_visible()
    expect(caller_box.get_by_role("button", name="Answer")).to_have_count(0)

    # Bob's open conversation gets the call from the stream, without a reload.
    ringing = pages[bob].locator("#live-call .call")
    expect(ringing).to_contain_text("Video call ringing")
    expect(ringing.get_by_role("button", name="Answer")).to_be_visible()
    expect(ringing.get_by_role("button", name="Decline")).to_be_visible()
    expect(ringing.get_by_role("button", name="Hang up")).to_be_hidden()
    # Answering from that box (a broadcast copy, so htmx sends the page's CSRF token).
    ringing.get_by_role("button", name="Answer").click()
    box = pages[bob].locator("#live-call .call")
    expect(box).to_contain_text("Bob · joined")
    expect(box.get_by_role("button", name="Hang up")).to_be_visible()
    expect(box.get_by_role("button", name="Answer")).to_have_count(0)
    expect(pages[bob]).to_have_url(re.compile(rf"/conversations/{chat}$"))
    assert not browse.errors, browse.errors
