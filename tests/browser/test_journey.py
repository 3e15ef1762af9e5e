"""Two people talk through the real pages, with and without JavaScript."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

WIDTHS = [375, 1280]
# Survives htmx swaps, vanishes on a full page load.
MARK_PAGE = "window.__sameDocument = true"
SAME_PAGE = "window.__sameDocument === true"


def composer(page: Page):
    return page.locator("#composer")


def message_box(page: Page):
    return page.get_by_label("Message", exact=True)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_two_people_start_a_private_conversation(browse, make, javascript):
    bea = make.user("Bea Baker")
    alice = browse.page(javascript=javascript)

    alice.goto("/register")
    alice.get_by_label("Name").fill("Alice Adams")
    alice.get_by_label("Email").fill("alice@example.com")
    alice.get_by_label("Password").fill(PASSWORD)
    alice.get_by_role("button", name="Create account").click()
    expect(alice).to_have_url(re.compile(r"/conversations$"))
    expect(alice.get_by_role("heading", name="Messages")).to_be_visible()

    alice.locator(".list-head").get_by_role("link", name="New conversation").click()
    expect(alice).to_have_url(re.compile(r"/conversations/new$"))
    expect(alice.get_by_label("Private message")).to_be_checked()
    alice.get_by_label("Bea Baker").check()
    alice.get_by_role("button", name="Start conversation").click()
    expect(alice).to_have_url(re.compile(r"/conversations/\d+$"))
    expect(alice.get_by_role("heading", name="Bea Baker")).to_be_visible()
    expect(alice.get_by_text("No messages yet. Say hello!")).to_be_visible()

    if javascript:
        alice.evaluate(MARK_PAGE)
    message_box(alice).fill("Hi Bea, lunch at noon?")
    composer(alice).get_by_role("button", name="Send").click()
    sent = alice.locator("#messages .message").filter(has_text="Hi Bea, lunch at noon?")
    expect(sent).to_have_count(1)
    expect(sent).to_have_class(re.compile(r"\bmine\b"))
    expect(message_box(alice)).to_have_value("")
    if javascript:
        # htmx appended the message and swapped in an empty composer: no page load.
        assert alice.evaluate(SAME_PAGE), "sending reloaded the page instead of swapping in place"
        expect(alice).to_have_url(re.compile(r"/conversations/\d+$"))
    else:
        # Post/Redirect/Get back to the conversation, scrolled to the new message.
        expect(alice).to_have_url(re.compile(r"/conversations/\d+#m\d+$"))

    reader = browse.page(javascript=javascript)
    browse.log_in(reader, make.email(bea))
    row = reader.locator("#conversation-list > li").filter(has_text="Alice Adams")
    expect(row).to_have_class(re.compile(r"\bunread\b"))
    expect(row.locator(".badge")).to_have_text("1 unread")
    expect(row).to_contain_text("Hi Bea, lunch at noon?")

    row.get_by_role("link").click()
    expect(reader.get_by_role("heading", name="Alice Adams")).to_be_visible()
    received = reader.locator("#messages .message").filter(has_text="Hi Bea, lunch at noon?")
    expect(received).to_have_count(1)
    expect(received.locator(".author")).to_have_text("Alice Adams")
    expect(received).not_to_have_class(re.compile(r"\bmine\b"))

    assert browse.errors == []


def test_refused_messages_keep_the_page_and_the_text(browse, make):
    alice, bea = make.user("Alice Adams"), make.user("Bea Baker")
    conversation_id = make.private(alice, bea)
    page = browse.page()
    browse.log_in(page, make.email(alice))
    page.goto(f"/conversations/{conversation_id}")
    page.evaluate(MARK_PAGE)

    composer(page).get_by_role("button", name="Send").click()
    expect(composer(page).get_by_role("alert")).to_have_text("Write a message before sending.")
    expect(message_box(page)).to_have_attribute("aria-invalid", "true")

    # The box stops typing at 5,000 characters; lift that limit to see the server refuse more.
    message_box(page).evaluate("box => box.removeAttribute('maxlength')")
    too_long = "x" * 5001
    message_box(page).fill(too_long)
    composer(page).get_by_role("button", name="Send").click()
    expect(composer(page).get_by_role("alert")).to_have_text(
        "Messages are at most 5,000 characters; this one has 5,001."
    )
    expect(message_box(page)).to_have_value(too_long)

    assert page.evaluate(SAME_PAGE), "a refused message reloaded the page"
    expect(page.get_by_role("heading", name="Bea Baker")).to_be_visible()
    expect(page.locator("#messages .message")).to_have_count(0)
    # Chromium logs every 4xx answer as "Failed to load resource"; the two 422s are expected.
    unexpected = [e for e in browse.errors if "status of 422" not in e]
    assert unexpected == []


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_fit_the_screen(browse, make, artifacts, width):
    alice, bea = make.user("Alice Adams"), make.user("Bea Baker")
    conversation_id = make.private(alice, bea)
    make.message(bea, conversation_id, "Morning! Did you see the new timetable?")
    # One unbroken 100-character word: it must wrap, not widen the page.
    make.message(alice, conversation_id, "Here: https://example.com/t/" + "0123456789" * 8)
    make.message(bea, conversation_id, "Great, see you at the platform.")
    make.group(bea, [alice], name="Weekend climbing trip with the whole crew")

    def check(page: Page, name: str) -> None:
        page.screenshot(path=artifacts / f"{name}-{width}.png", full_page=True)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{name} scrolls sideways at {width}px: {scroll_width}px wide"

    page = browse.page(width=width)
    page.goto("/login")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    check(page, "login")

    browse.log_in(page, make.email(alice))
    expect(page.locator("#conversation-list > li")).to_have_count(2)
    check(page, "conversations")

    page.goto("/conversations/new")
    expect(page.get_by_label("Bea Baker")).to_be_visible()
    check(page, "new-conversation")

    page.goto(f"/conversations/{conversation_id}")
    expect(page.locator("#messages .message")).to_have_count(3)
    check(page, "conversation")

    no_js = browse.page(javascript=False, width=width)
    browse.log_in(no_js, make.email(alice))
    no_js.goto(f"/conversations/{conversation_id}")
    expect(no_js.locator("#messages .message")).to_have_count(3)
    check(no_js, "conversation-nojs")

    assert browse.errors == []
