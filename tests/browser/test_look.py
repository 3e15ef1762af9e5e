"""How a conversation looks at phone and desktop sizes, light and dark: the header keeps the
name readable, the composer is one row, and one sender's messages in a row show their name
once, live ones included."""

import re

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


def visible_box(page: Page, selector: str) -> dict | None:
    locator = page.locator(selector)
    return locator.bounding_box() if locator.is_visible() else None


def test_the_list_and_the_conversation_sit_side_by_side_on_a_desktop(browse, make):
    ada = make.user("Ada")
    people = [make.user(f"Person {n:02}") for n in range(30)]
    chats = [make.private(ada, person) for person in people]
    page = open_chat(browse, make, ada, "/conversations", DESKTOP)
    page.evaluate("window.__samePage = true")
    listing, pane = box(page, ".list-pane"), box(page, "#conversation-pane")
    assert listing["x"] + listing["width"] <= pane["x"] + 1 and abs(listing["y"] - pane["y"]) < 2
    expect(page.get_by_text("Choose a conversation")).to_be_visible()

    # Far down the list: opening one swaps only the pane, the list keeps its place.
    page.locator(".list-pane").evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
    scrolled = page.locator(".list-pane").evaluate("(el) => el.scrollTop")
    assert scrolled > 200
    oldest = chats[0]  # no messages yet: last in the list
    page.locator(f"#conversation-{oldest} a").click()
    expect(page).to_have_url(re.compile(rf"/conversations/{oldest}$"))
    expect(page.get_by_role("heading", name="Person 00", level=1)).to_be_visible()
    expect(page).to_have_title("Person 00 · Chipper")
    assert page.evaluate("window.__samePage") is True  # no page load
    assert page.locator(".list-pane").evaluate("(el) => el.scrollTop") == scrolled
    expect(page.locator(f"#conversation-{oldest} a")).to_have_attribute("aria-current", "page")
    expect(page.locator('#conversation-list a[aria-current="page"]')).to_have_count(1)
    expect(page.locator("#composer textarea")).to_be_focused()
    # The swapped-in pane is live: a new message shows, and one sent from it goes out.
    make.message(people[0], oldest, "Hello from the pane")
    expect(page.locator("#messages")).to_contain_text("Hello from the pane")
    page.locator("#composer textarea").fill("And back")
    page.keyboard.press("Enter")
    expect(page.locator("#messages .message.mine")).to_have_count(1)
    expect(page.locator(f"#conversation-{oldest} .preview")).to_have_text("You: And back")
    assert page.evaluate("window.__samePage") is True

    # Ctrl-click still opens a row in a tab of its own, leaving this one as it is.
    with page.context.expect_page() as opened:
        page.locator(f"#conversation-{chats[2]} a").click(modifiers=["Control"])
    opened.value.wait_for_load_state()
    assert opened.value.url.endswith(f"/conversations/{chats[2]}")
    expect(page).to_have_url(re.compile(rf"/conversations/{oldest}$"))
    opened.value.close()

    # A second one, and Back shows the first again.
    page.locator(f"#conversation-{chats[1]} a").click()
    expect(page.get_by_role("heading", name="Person 01", level=1)).to_be_visible()
    page.go_back()
    expect(page).to_have_url(re.compile(rf"/conversations/{oldest}$"))
    expect(page.get_by_role("heading", name="Person 00", level=1)).to_be_visible()
    expect(page.locator(".list-pane")).to_be_visible()
    assert browse.errors == []


def test_a_phone_shows_one_pane_at_a_time(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    make.message(bob, chat, "Lunch?")
    page = open_chat(browse, make, ada, "/conversations", PHONE)
    expect(page.locator(".list-pane")).to_be_visible()
    expect(page.locator("#conversation-pane")).to_be_hidden()

    page.locator(f"#conversation-{chat} a").click()
    expect(page.get_by_role("heading", name="Bob", level=1)).to_be_visible()
    expect(page.locator(".list-pane")).to_be_hidden()
    assert box(page, "#conversation-pane")["width"] == PHONE[0]
    page.get_by_role("link", name="All conversations").click()
    expect(page.locator(".list-pane")).to_be_visible()
    assert browse.errors == []


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_group_details_open_beside_the_chat_or_on_their_own_page(browse, make, size):
    ada, bob = make.user("Ada"), make.user("Bob")
    group = make.group(ada, [bob], name="Allotment")
    page = open_chat(browse, make, ada, f"/conversations/{group}", size)
    page.get_by_role("link", name=re.compile(r"group details")).click()
    details = page.locator("#details")
    expect(details.get_by_role("button", name="Leave group")).to_be_visible()
    expect(details.get_by_role("button", name="Rename")).to_be_visible()
    # Everything in view without scrolling: members, mute, rename and leave.
    assert details.get_by_role("button", name="Leave group").bounding_box()["y"] < size[1]
    if size == DESKTOP:
        expect(page).to_have_url(re.compile(rf"/conversations/{group}$"))
        chat, panel = box(page, ".conversation-main"), box(page, "#details-panel")
        assert chat["x"] + chat["width"] <= panel["x"] + 1  # beside the timeline, not over it
        page.keyboard.press("Escape")
        expect(page.locator("#details-panel")).to_be_hidden()
    else:
        expect(page).to_have_url(re.compile(rf"/conversations/{group}/details$"))
        expect(page.get_by_role("heading", name="Allotment", level=1)).to_be_visible()
    assert nothing_sticks_out(page) == []
    assert browse.errors == []


def test_the_live_person_search_keeps_ticks_and_logs_nothing(browse, make):
    ada = make.user("Ada")
    make.user("Bob Brown")
    make.user("Cara Cole")
    page = open_chat(browse, make, ada, "/conversations/new", PHONE)
    console = []
    page.on("console", lambda message: console.append(message.text))
    search = page.get_by_label("Find people by name or email")
    search.fill("bob")  # searches as you type, nothing ticked yet
    expect(page.get_by_label("Cara Cole")).to_have_count(0)
    page.get_by_label("Bob Brown").check()
    search.fill("cara")
    expect(page.get_by_label("Cara Cole")).to_be_visible()
    expect(page.get_by_label("Bob Brown")).to_be_checked()
    assert [line for line in console if "hx-include" in line or "no matches" in line] == []
    assert browse.errors == []
