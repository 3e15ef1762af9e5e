"""Without JavaScript, in Chromium: building a group across several searches keeps every
choice, a refused send comes back to the conversation with the reason and the text, and a
message is edited through its menu and a form page."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_building_a_group_with_two_searches_keeps_every_choice(browse, make):
    ada = make.user("Ada")
    for name in ("Bob Brown", "Cara Cole", "Dan Dale"):
        make.user(name)
    page = browse.page(javascript=False, width=375, height=812)
    browse.log_in(page, make.email(ada))
    page.goto("/conversations/new")

    page.get_by_label("Group chat").check()
    page.get_by_label("Group name").fill("Allotment")
    search = page.get_by_label("Find people by name or email")
    search.fill("bob")
    page.get_by_role("button", name="Search").click()
    page.get_by_label("Bob Brown").check()
    search.fill("cara")
    page.get_by_role("button", name="Search").click()
    # The second search kept the kind, the name and Bob, and found Cara (not Dan).
    expect(page.get_by_label("Group chat")).to_be_checked()
    expect(page.get_by_label("Group name")).to_have_value("Allotment")
    expect(page.get_by_label("Bob Brown")).to_be_checked()
    expect(page.get_by_label("Dan Dale")).to_have_count(0)
    page.get_by_label("Cara Cole").check()
    page.get_by_label("Group name").press("Enter")  # starts it, as the button does

    expect(page).to_have_url(re.compile(r"/conversations/\d+$"))
    expect(page.get_by_role("heading", name="Allotment", level=1)).to_be_visible()
    page.get_by_role("link", name=re.compile("group details")).click()
    names = page.locator(".member-list .member-name")
    expect(names).to_have_count(3)
    for name, shown in zip(("Ada", "Bob Brown", "Cara Cole"), names.all(), strict=True):
        expect(shown).to_contain_text(name)
    assert browse.errors == []


def test_a_refused_send_comes_back_with_the_text_and_a_reload_posts_nothing(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    page = browse.page(javascript=False, width=375, height=812)
    browse.log_in(page, make.email(ada))
    page.goto(f"/conversations/{chat}")
    page.get_by_label("Message", exact=True).fill("Here is the plan")
    page.locator('#composer input[type="file"]').first.set_input_files(
        {"name": "plan.svg", "mimeType": "image/svg+xml", "buffer": b"<svg></svg>"}
    )
    page.get_by_role("button", name="Send").click()

    expect(page).to_have_url(re.compile(rf"/conversations/{chat}\?refused=1#composer$"))
    expect(page.locator("#composer-error")).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_have_value("Here is the plan")
    page.reload()  # a GET: nothing is posted again, and the text is still there
    expect(page.get_by_label("Message", exact=True)).to_have_value("Here is the plan")
    expect(page.locator("#messages .message")).to_have_count(0)
    page.get_by_role("button", name="Send").click()  # without the file this time
    expect(page.locator("#messages .message")).to_have_count(1)
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    assert browse.errors == []


def test_a_message_is_edited_through_its_menu_and_a_form_page(browse, make, artifacts):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    message = make.message(ada, chat, "Lunch at noon?")
    page = browse.page(javascript=False, width=375, height=812)
    browse.log_in(page, make.email(ada))
    page.goto(f"/conversations/{chat}")
    mine = page.locator(f"#m{message}")
    mine.get_by_title("Message actions").click()  # a <details>: opens without a script
    mine.get_by_role("link", name="Edit this message").click()
    expect(page).to_have_url(re.compile(rf"/messages/{message}/edit$"))
    box = page.get_by_label("Message")
    expect(box).to_have_value("Lunch at noon?")
    box.fill("")
    page.get_by_role("button", name="Save").click()  # refused in the browser: required
    expect(page).to_have_url(re.compile(rf"/messages/{message}/edit$"))
    box.fill("Lunch at one?")
    page.screenshot(path=artifacts / "edit-nojs-phone.png")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(rf"/conversations/{chat}#m{message}$"))
    expect(page.locator(f"#m{message} .body")).to_have_text("Lunch at one? (edited)")
    assert browse.errors == []
