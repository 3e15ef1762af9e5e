"""Live updates in two real browsers: what A does shows up on B's open page without a reload.

Every page gets an init script that notes when its event stream is open and which events
reached it, so a test can wait for "B is listening" or "A got its own broadcast" instead of
sleeping. The same-document flag of test_journey.py proves that nothing reloaded.

wait_for_function gets arrow functions only: Playwright evaluates those once, while a bare
expression is eval'ed again at every poll, which the pages' CSP (no 'unsafe-eval') refuses.
"""

import re
import time

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

MARK_PAGE = "window.__sameDocument = true"
SAME_PAGE = "window.__sameDocument === true"
# Runs before the page's own scripts on every document the page loads.
WATCH_STREAM = """
window.__streamOpen = false;
window.__events = [];
document.addEventListener("htmx:sseOpen", () => { window.__streamOpen = true; });
document.addEventListener("htmx:sseBeforeMessage", (e) => { window.__events.push(e.detail.type); });
"""
STREAM_OPEN = "window.__streamOpen === true"
ONLINE = re.compile(r"\bonline\b")
MINE = re.compile(r"\bmine\b")


def person(browse, make, user_id: int, path: str | None = None) -> Page:
    """A browser signed in as the user, on `path` (default: the conversation list), listening."""
    page = browse.page()
    page.add_init_script(WATCH_STREAM)
    browse.log_in(page, make.email(user_id))
    if path:
        page.goto(path)
    page.wait_for_function(f"() => {STREAM_OPEN}")
    page.evaluate(MARK_PAGE)
    return page


def got_event(page: Page, kind: str, times: int = 1) -> None:
    """Waits until the page's stream has delivered `times` events of that kind."""
    page.wait_for_function(
        "([kind, times]) => window.__events.filter((k) => k === kind).length >= times",
        arg=[kind, times],
    )


def message_box(page: Page):
    return page.get_by_label("Message", exact=True)


def send(page: Page, text: str) -> None:
    message_box(page).fill(text)
    with page.expect_response(lambda r: r.request.method == "POST" and r.status == 201):
        page.locator("#composer").get_by_role("button", name="Send").click()


def messages_with(page: Page, text: str):
    return page.locator("#messages .message").filter(has_text=text)


def choose(message, action: str) -> None:
    """Opens a message's menu ("...", shown on hover with a mouse) and picks an action."""
    message.hover()
    message.get_by_title("Message actions").click()
    message.get_by_role("link", name=action).click()


def assert_no_reload(*pages: Page) -> None:
    for page in pages:
        assert page.evaluate(SAME_PAGE), f"{page.url} reloaded instead of updating in place"


def test_a_message_and_its_deletion_reach_the_open_page_once(browse, make):
    alice, bea = make.user("Alice Adams"), make.user("Bea Baker")
    conversation_id = make.private(alice, bea)
    path = f"/conversations/{conversation_id}"
    a = person(browse, make, alice, path)
    b = person(browse, make, bea, path)

    text = "Are you coming to the gig tonight?"
    send(a, text)
    on_a, on_b = messages_with(a, text), messages_with(b, text)
    expect(on_b).to_have_count(1)
    expect(on_b.locator(".author")).to_have_text("Alice Adams")
    expect(on_b).not_to_have_class(MINE)
    expect(on_a).to_have_count(1)
    expect(on_a).to_have_class(MINE)
    message_id = on_a.get_attribute("id")
    expect(on_b).to_have_id(message_id)

    # A's page got both copies, the POST answer (awaited in send) and the broadcast: still one.
    got_event(a, f"message-created-{conversation_id}")
    a.wait_for_timeout(1000)
    expect(on_a).to_have_count(1)
    expect(on_b).to_have_count(1)
    assert_no_reload(a, b)

    # Usually the broadcast beats the POST answer; hold the answer back so that this order
    # is certain once, and the answer's copy must replace the broadcast's.
    held = []
    a.route(
        re.compile(rf"/conversations/{conversation_id}/messages$"),
        lambda route: held.append((route, route.fetch())),
    )
    second = "Doors open at eight."
    message_box(a).fill(second)
    a.locator("#composer").get_by_role("button", name="Send").click()
    got_event(a, f"message-created-{conversation_id}", times=2)
    expect(messages_with(a, second)).to_have_count(1)
    # The handler gets the answer a moment after the broadcast; it runs while we wait here.
    deadline = time.monotonic() + 5
    while not held and time.monotonic() < deadline:
        a.wait_for_timeout(50)
    assert len(held) == 1, "the POST answer was not held back"
    route, response = held[0]
    with a.expect_response(lambda r: r.request.method == "POST" and r.status == 201):
        route.fulfill(response=response)
    expect(message_box(a)).to_have_value("")  # the answer's fresh composer is in
    a.wait_for_timeout(500)
    expect(messages_with(a, second)).to_have_count(1)
    expect(messages_with(a, second)).to_have_class(MINE)
    expect(messages_with(b, second)).to_have_count(1)
    expect(a.locator("#messages .message")).to_have_count(2)
    a.unroute_all()
    assert_no_reload(a, b)

    a.once("dialog", lambda dialog: dialog.accept())
    # The message's own menu holds Delete (shown on hover with a mouse).
    a.locator(f"#{message_id}").hover()
    a.locator(f"#{message_id}").get_by_title("Message actions").click()
    a.locator(f"#{message_id}").get_by_role("button", name="Delete this message").click()
    deleted_on_b = b.locator(f"#{message_id}")
    expect(deleted_on_b).to_have_class(re.compile(r"\bdeleted\b"))
    expect(deleted_on_b.locator(".body")).to_have_text("Message deleted")
    expect(b.locator("#messages .message")).to_have_count(2)
    expect(a.locator(f"#{message_id} .body")).to_have_text("Message deleted")
    got_event(a, f"message-deleted-{conversation_id}")
    expect(a.locator("#messages .message")).to_have_count(2)
    assert_no_reload(a, b)

    assert browse.errors == []


def test_typing_shows_then_fades_or_clears_when_the_message_arrives(browse, make):
    alice, bea = make.user("Alice Adams"), make.user("Bea Baker")
    conversation_id = make.private(alice, bea)
    path = f"/conversations/{conversation_id}"
    a = person(browse, make, alice, path)
    b = person(browse, make, bea, path)
    typing = b.locator("#typing")
    notice = typing.locator(".typing")

    message_box(a).fill("Running a bit")
    expect(notice).to_have_text("Alice Adams is typing…")
    expect(notice).to_be_visible()
    seen = time.monotonic()
    # Nobody types on: the notice expires by itself (a CSS animation hides it).
    expect(notice).to_be_hidden(timeout=10_000)
    shown_for = time.monotonic() - seen
    assert shown_for > 2, f"the typing notice vanished after only {shown_for:.1f} s"

    # Typing again (the 3 s throttle is long over) shows it again; the message clears it.
    message_box(a).fill("Running a bit late, sorry!")
    expect(notice).to_be_visible()
    send(a, "Running a bit late, sorry!")
    expect(messages_with(b, "Running a bit late, sorry!")).to_have_count(1)
    expect(typing).to_be_empty()
    assert_no_reload(a, b)

    assert browse.errors == []


def test_the_conversation_list_reorders_and_counts_unread(browse, make):
    alice, bea = make.user("Alice Adams"), make.user("Bea Baker")
    private = make.private(alice, bea)
    group = make.group(alice, [bea], name="Book club")
    make.message(alice, group, "Chapter 3 for Friday")
    a = person(browse, make, alice, f"/conversations/{private}")
    b = person(browse, make, bea)

    rows = b.locator("#conversation-list > li")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_id(f"conversation-{group}")
    expect(rows.nth(1)).to_have_id(f"conversation-{private}")
    expect(rows.nth(1).locator(".badge")).to_have_count(0)
    nav_badge = b.locator("#nav-unread")
    expect(nav_badge).to_have_text("1 unread")

    send(a, "Are you free tomorrow?")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_id(f"conversation-{private}")
    expect(rows.nth(0)).to_have_class(re.compile(r"\bunread\b"))
    expect(rows.nth(0).locator(".badge")).to_have_text("1 unread")
    expect(rows.nth(0).locator(".preview")).to_have_text("Are you free tomorrow?")
    expect(rows.nth(1)).to_have_id(f"conversation-{group}")
    expect(nav_badge).to_have_text("2 unread")
    assert_no_reload(b)

    assert browse.errors == []


def test_group_rename_and_removal_reach_the_member_page(browse, make):
    alice, bea, cara = make.user("Alice Adams"), make.user("Bea Baker"), make.user("Cara Cole")
    group = make.group(alice, [bea, cara], name="Book club")
    path = f"/conversations/{group}"
    a = person(browse, make, alice, path)
    b = person(browse, make, bea, path)
    expect(b.get_by_role("heading", name="Book club", level=1)).to_be_visible()

    # A's details panel is swapped by the POST's answer and, unless that answer came first,
    # refetched for the broadcast: the next step starts once no request is under way.
    a.evaluate(
        """() => {
          window.__detailsSwaps = 0;
          document.addEventListener("htmx:afterSwap", (e) => {
            const ids = [e.target.id, e.detail.target?.id];
            if (ids.includes("details")) window.__detailsSwaps += 1;
          });
        }"""
    )
    toggle = a.get_by_role("link", name=re.compile(r"^3 members\W+group details$"))
    toggle.click()
    panel = a.get_by_role("complementary", name="Group details")
    expect(panel).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    panel.get_by_label("Group name").fill("Reading circle")
    panel.get_by_role("button", name="Rename").click()
    expect(b.get_by_role("heading", name="Reading circle", level=1)).to_be_visible()
    expect(a.get_by_role("heading", name="Reading circle", level=1)).to_be_visible()
    a.wait_for_function(
        "() => window.__detailsSwaps >= 1 && !document.querySelector('.htmx-request')"
    )
    expect(panel).to_be_visible()  # the header's refresh leaves the panel open
    expect(panel.get_by_label("Group name")).to_have_value("Reading circle")
    assert_no_reload(a, b)

    a.once("dialog", lambda dialog: dialog.accept())
    panel.get_by_role("button", name="Remove Bea Baker").click()
    expect(b.locator("#conversation-status")).to_have_text(
        re.compile(r"^\s*You were removed from this conversation\.")
    )
    expect(b.locator("#composer")).to_be_hidden()
    expect(a.get_by_role("link", name=re.compile(r"^2 members\W+group details$"))).to_be_visible()
    expect(panel.locator(".member-list").get_by_text("Bea Baker")).to_have_count(0)

    # B is off the conversation's events at once: A's next message does not reach B.
    send(a, "Welcome to the new name")
    got_event(a, f"message-created-{group}")
    a.wait_for_timeout(300)
    expect(messages_with(b, "Welcome to the new name")).to_have_count(0)
    assert_no_reload(a, b)

    assert browse.errors == []


def test_presence_shows_who_is_online(browse, make, app):
    # Streams notice a closed tab at their next heartbeat: make that quick for the offline part.
    app.config["STREAM_HEARTBEAT"] = 1.0
    alice, bea = make.user("Alice Adams"), make.user("Bea Baker")
    group = make.group(bea, [alice], name="Climbing")
    b = person(browse, make, bea, f"/conversations/{group}")
    alice_marks = b.locator(f'[data-presence="{alice}"]')
    expect(alice_marks).to_have_count(2)  # her avatar and the "online" label in the panel
    for mark in alice_marks.all():
        expect(mark).not_to_have_class(ONLINE)

    a = person(browse, make, alice)  # any page: here the conversation list
    for mark in alice_marks.all():
        expect(mark).to_have_class(ONLINE)
    assert_no_reload(b)

    # A closes her only tab: after the grace period she is shown offline again.
    a.context.close()
    for mark in alice_marks.all():
        expect(mark).not_to_have_class(ONLINE, timeout=15_000)
    assert_no_reload(b)

    assert browse.errors == []


def test_a_tab_signed_out_from_another_device_goes_to_the_login_page(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    phone = person(browse, make, ada, f"/conversations/{chat}")
    laptop = person(browse, make, ada, "/account")
    expect(laptop.get_by_text("this browser")).to_be_visible()
    laptop.get_by_role("button", name="Sign out everywhere else").click()
    expect(laptop.get_by_role("status")).to_contain_text("Signed out everywhere else (1)")
    # The phone's open page hears it at once, without anyone touching it.
    expect(phone).to_have_url(re.compile(rf"/login\?next=/conversations/{chat}$"))
    expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
    laptop.goto("/conversations")
    expect(laptop.get_by_role("heading", name="Log in")).to_have_count(0)


def test_an_edit_shows_in_place_on_both_pages(browse, make):
    alice, bea = make.user("Alice Adams"), make.user("Bea Baker")
    conversation_id = make.private(alice, bea)
    path = f"/conversations/{conversation_id}"
    a = person(browse, make, alice, path)
    b = person(browse, make, bea, path)
    send(a, "See you at 8")
    message_id = messages_with(a, "See you at 8").get_attribute("id")
    expect(b.locator(f"#{message_id}")).to_have_count(1)

    choose(a.locator(f"#{message_id}"), "Edit this message")
    box = a.locator(f"#{message_id}").get_by_label("Message")
    expect(box).to_have_value("See you at 8")
    box.fill("See you at 9")
    with a.expect_response(lambda r: r.request.method == "PATCH" and r.status == 200):
        a.locator(f"#{message_id}").get_by_role("button", name="Save").click()
    for page in (a, b):
        expect(page.locator(f"#{message_id} .body")).to_have_text("See you at 9 (edited)")
        expect(page.locator(f"#{message_id} .edited")).to_have_text("(edited)")
    expect(a.locator(f"#{message_id}")).to_have_class(MINE)
    expect(b.locator(f"#{message_id}")).not_to_have_class(MINE)
    got_event(b, f"message-updated-{conversation_id}")
    expect(b.locator("#messages .message")).to_have_count(1)
    assert_no_reload(a, b)

    # Cancel puts the message back as it was.
    choose(a.locator(f"#{message_id}"), "Edit this message")
    a.locator(f"#{message_id}").get_by_role("link", name="Cancel").click()
    expect(a.locator(f"#{message_id} .body")).to_have_text("See you at 9 (edited)")
    assert_no_reload(a)
    assert browse.errors == []


def a_question_then_more(make, more: int) -> tuple[int, int, int, int]:
    """Bea asks Alice a question and writes `more` messages after it: the two, the
    conversation and the question."""
    alice, bea = make.user("Alice Adams"), make.user("Bea Baker")
    conversation_id = make.private(alice, bea)
    original = make.message(bea, conversation_id, "Shall we meet at the station?")
    for n in range(more):
        make.message(bea, conversation_id, f"and another thing {n}")
    return alice, bea, conversation_id, original


def test_a_reply_quotes_its_original_and_the_quote_jumps_to_it(browse, make):
    alice, bea, conversation_id, original = a_question_then_more(make, 12)
    path = f"/conversations/{conversation_id}"
    a = person(browse, make, alice, path)
    b = person(browse, make, bea, path)

    message_box(a).fill("Yes, at ten")  # typed before choosing Reply: it stays
    theirs = a.locator(f"#m{original}")
    theirs.hover()
    theirs.get_by_title("Message actions").click()
    # Someone else's message: Reply, but no Edit (nor Delete) in its menu.
    expect(theirs.get_by_role("link", name="Edit this message")).to_be_hidden()
    theirs.get_by_role("link", name="Reply to this message").click()
    expect(a.locator("#replying")).to_contain_text("Replying to Bea Baker")
    expect(message_box(a)).to_be_focused()
    expect(message_box(a)).to_have_value("Yes, at ten")
    send(a, "Yes, at ten")
    expect(a.locator("#replying")).to_have_count(0)  # the next message is a plain one
    for page in (a, b):
        quote = messages_with(page, "Yes, at ten").locator(".quote")
        expect(quote).to_have_text("Bea Baker Shall we meet at the station?")
    # The quote shows the original, scrolled into view and outlined a moment.
    messages_with(b, "Yes, at ten").locator(".quote").click()
    expect(b.locator(f"#m{original}")).to_have_class(re.compile(r"\bflash\b"))
    expect(b.locator(f"#m{original}")).to_be_in_viewport()
    assert_no_reload(a, b)
    assert browse.errors == []


def unread_below_read(make) -> tuple[int, int, int, int]:
    """Alice and Bea, with 30 messages Alice read then 26 from Bea she has not: the two, the
    conversation and the first unread message."""
    alice, bea = make.user("Alice Adams"), make.user("Bea Baker")
    conversation_id = make.private(alice, bea)
    for n in range(30):
        make.message(alice, conversation_id, f"old news {n}")
    first_new = make.message(bea, conversation_id, "Are you there?")
    for n in range(25):
        make.message(bea, conversation_id, f"and then {n}")
    return alice, bea, conversation_id, first_new


def test_a_conversation_opens_at_new_messages_and_counts_what_arrives_below(browse, make):
    alice, bea, conversation_id, first_new = unread_below_read(make)
    path = f"/conversations/{conversation_id}"
    a = person(browse, make, alice, path)
    b = person(browse, make, bea, path)
    expect(a.locator("#unread")).to_have_text("New messages")
    expect(a.locator("#unread")).to_be_in_viewport()
    expect(a.locator(f"#m{first_new}")).to_be_in_viewport()
    expect(messages_with(a, "and then 24")).not_to_be_in_viewport()

    # Alice reads further up; two messages arrive below.
    send(b, "Hello?")
    send(b, "Hello??")
    button = a.get_by_role("button", name="2 new messages")
    expect(button).to_be_visible()
    button.click()
    expect(messages_with(a, "Hello??")).to_be_in_viewport()
    expect(button).to_be_hidden()
    # At the newest end, what arrives just shows.
    send(b, "There you are")
    expect(messages_with(a, "There you are")).to_be_in_viewport()
    expect(a.locator("#new-below")).to_be_hidden()
    assert_no_reload(a, b)
    assert browse.errors == []


def test_opened_from_the_list_it_starts_at_new_messages(browse, make):
    alice, bea, conversation_id, first_new = unread_below_read(make)
    a = person(browse, make, alice)  # the list, beside an empty pane on a desktop
    a.locator(f"#conversation-{conversation_id} a").click()
    expect(a.locator("#unread")).to_be_in_viewport()
    expect(a.locator(f"#m{first_new}")).to_be_in_viewport()
    expect(messages_with(a, "and then 24")).not_to_be_in_viewport()
    assert_no_reload(a)
    assert browse.errors == []


def test_older_history_leaves_new_messages_to_the_latest_page(browse, make):
    alice, bea, conversation_id, original = a_question_then_more(make, 60)
    latest = f"/conversations/{conversation_id}"
    a = person(browse, make, alice, f"{latest}?around={original}")
    b = person(browse, make, bea, latest)
    expect(a.get_by_role("link", name="Newer messages")).to_be_visible()

    # What arrives is not put below the gap: the button says so and opens the latest page.
    send(b, "Hello?")
    got_event(a, f"message-created-{conversation_id}")
    expect(messages_with(a, "Hello?")).to_have_count(0)
    button = a.get_by_role("button", name="1 new message")
    expect(button).to_be_visible()
    button.click()
    expect(a).to_have_url(re.compile(rf"{latest}$"))
    expect(messages_with(a, "Hello?")).to_be_in_viewport()

    # Sent from older history, a message opens the latest page with it.
    a.goto(f"{latest}?around={original}")
    a.wait_for_function(f"() => {STREAM_OPEN}")
    send(a, "Yes, at ten")
    expect(a).to_have_url(re.compile(rf"{latest}#m\d+$"))
    expect(messages_with(a, "Yes, at ten")).to_have_count(1)
    expect(messages_with(a, "Yes, at ten")).to_be_in_viewport()
    expect(messages_with(b, "Yes, at ten")).to_have_count(1)
    assert browse.errors == []


def test_a_mention_formatted_text_and_a_reaction_reach_both_pages(browse, make):
    alice, bea = make.user("Alice Adams"), make.user("Bea Baker")
    conversation_id = make.private(alice, bea)
    path = f"/conversations/{conversation_id}"
    a = person(browse, make, alice, path)
    b = person(browse, make, bea, path)

    # "@" offers the other person; Enter takes the name instead of sending.
    box = message_box(a)
    box.fill("")
    box.type("**Lunch** at `noon`? @Be")
    option = a.get_by_role("option", name="Bea Baker")
    expect(option).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    expect(box).to_have_value("**Lunch** at `noon`? @Bea Baker ")
    expect(a.locator("#mention-list")).to_have_count(0)
    send(a, box.input_value() + "see https://example.com")
    for page in (a, b):
        body = messages_with(page, "Lunch").locator(".body")
        expect(body.locator("strong")).to_have_text("Lunch")
        expect(body.locator("code")).to_have_text("noon")
        expect(body.get_by_role("link", name="https://example.com")).to_have_attribute(
            "rel", "noopener nofollow ugc"
        )
    # The one named sees it stronger; the writer sees it plain.
    expect(b.locator(".mention")).to_have_class(re.compile(r"\byou\b"))
    expect(a.locator(".mention")).not_to_have_class(re.compile(r"\byou\b"))
    # Bea's open page read it: "Seen" appears under Alice's message, live.
    expect(a.locator("#seen")).to_have_text("Seen")
    expect(b.locator("#seen")).to_have_text("")

    # Bea reacts from the menu; both pages show the chip, hers marked as hers.
    theirs = messages_with(b, "Lunch")
    theirs.hover()
    theirs.get_by_title("Message actions").click()
    with b.expect_response(lambda r: "/reactions" in r.url and r.status == 200):
        theirs.get_by_role("button", name="👍").click()
    expect(b.locator(".reaction")).to_have_attribute("aria-pressed", "true")
    got_event(a, f"message-updated-{conversation_id}")
    chip = a.locator(".reaction")
    expect(chip).to_have_attribute("aria-label", "👍 1: Bea Baker")
    expect(chip).to_have_attribute("aria-pressed", "false")
    # Alice adds hers by pressing the chip: two, and hers too.
    with a.expect_response(lambda r: "/reactions" in r.url and r.status == 200):
        chip.click()
    expect(a.locator(".reaction .count")).to_have_text("2")
    expect(a.locator(".reaction")).to_have_class(re.compile(r"\byours\b"))
    got_event(b, f"message-updated-{conversation_id}", times=2)
    expect(b.locator(".reaction .count")).to_have_text("2")
    expect(b.locator(".reaction")).to_have_class(re.compile(r"\byours\b"))
    assert_no_reload(a, b)
    assert browse.errors == []
