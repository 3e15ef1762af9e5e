"""How a conversation looks at phone and desktop sizes, light and dark: the header keeps the
name readable, the composer is one row, and one sender's messages in a row show their name
once, live ones included."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_live import STREAM_OPEN, WATCH_STREAM

pytestmark = pytest.mark.browser

PHONE, DESKTOP = (375, 812), (1280, 800)


def open_chat(browse, make, user: int, path: str, size, scheme: str = "light") -> Page:
    page = browse.page(width=size[0], height=size[1])
    page.emulate_media(color_scheme=scheme)
    page.add_init_script(WATCH_STREAM)
    browse.log_in(page, make.email(user))
    page.goto(path)
    page.wait_for_function(f"() => {STREAM_OPEN}")
    return page


def box(page: Page, selector: str) -> dict:
    return page.locator(selector).first.bounding_box()


def nothing_sticks_out(page: Page) -> list[str]:
    return page.evaluate(
        """() => [...document.querySelectorAll("main *")]
            .filter((e) => e.getBoundingClientRect().right > innerWidth + 1)
            .map((e) => e.tagName + "." + (e.className.baseVal ?? e.className))"""
    )


def names_shown(page: Page) -> list[str]:
    """The sender names a reader sees, message by message ("" where none is shown)."""
    return page.evaluate(
        """() => [...document.querySelectorAll("#messages > .message")].map((li) => {
            const author = li.querySelector(".author");
            return author && author.getBoundingClientRect().width > 1 ? author.textContent : "";
        })"""
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_header_and_composer_fit_in_one_row(browse, make, size, scheme):
    ada, bob, cara = make.user("Ada"), make.user("Bob"), make.user("Cara")
    group = make.group(ada, [bob, cara], name="Saturday climbing trip with the whole club")
    page = open_chat(browse, make, ada, f"/conversations/{group}", size, scheme)

    title = box(page, "#conversation-title")
    assert title["width"] >= 120, title  # the name stays readable next to the icon buttons
    for name in ("Audio call", "Video call"):
        button = page.get_by_role("button", name=name)
        expect(button).to_be_visible()
        assert abs(button.bounding_box()["y"] - title["y"]) < 30  # on the title's row
    composer = box(page, "#composer")
    assert composer["height"] < 64, composer  # one row while no file is chosen
    send_button = page.locator("#composer").get_by_role("button", name="Send")
    expect(send_button).to_be_visible()
    assert nothing_sticks_out(page) == []
    assert browse.errors == []


def test_one_senders_messages_in_a_row_show_the_name_once(browse, make):
    ada, bob, cara = make.user("Ada"), make.user("Bob"), make.user("Cara")
    group = make.group(ada, [bob, cara], name="Club")
    make.message(bob, group, "Who is driving?")
    make.message(bob, group, "I can take three")
    make.message(ada, group, "Me please")
    page = open_chat(browse, make, ada, f"/conversations/{group}", PHONE)

    # Your own messages carry no name; the others' name opens each of their runs.
    assert names_shown(page) == ["Bob", "", ""]

    # Live: Cara's first message opens a run, her second joins it, Bob's opens his again.
    for user, body in ((cara, "Count me in"), (cara, "Snacks on me"), (bob, "Great")):
        make.message(user, group, body)
        expect(page.locator("#messages > .message").last).to_contain_text(body)
    assert names_shown(page) == ["Bob", "", "", "Cara", "", "Bob"]
    # The avatar shows once per run too, in the sender's colour.
    avatars = page.locator("#messages > .message:not(.mine):not(.continued) > .avatar")
    expect(avatars).to_have_count(3)
    assert browse.errors == []
