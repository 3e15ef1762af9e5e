"""Profiles through the real pages: a picture and a new name reach the others' open pages
live, and a name opens a card whose "Message" opens the private chat, with and without
JavaScript."""

import io

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

WATCH = """
window.__streamOpen = false;
document.addEventListener("htmx:sseOpen", () => { window.__streamOpen = true; });
"""


def photo() -> bytes:
    picture = Image.new("RGB", (600, 400), "#2a6")
    picture.paste("#c33", (0, 0, 300, 400))
    out = io.BytesIO()
    picture.save(out, "JPEG")
    return out.getvalue()


def signed_in(browse, make, user_id: int, path: str, javascript=True) -> Page:
    page = browse.page(javascript=javascript)
    page.add_init_script(WATCH)
    browse.log_in(page, make.email(user_id))
    page.goto(path)
    if javascript:
        page.wait_for_function("() => window.__streamOpen === true")
    return page


def test_a_new_picture_and_name_reach_the_open_chat_live(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    make.message(ada, chat, "Look, a picture")
    bob_page = signed_in(browse, make, bob, f"/conversations/{chat}")
    ada_page = signed_in(browse, make, ada, "/profile")

    ada_page.get_by_label("Choose a photo").set_input_files(
        {"name": "me.jpg", "mimeType": "image/jpeg", "buffer": photo()}
    )
    ada_page.get_by_role("button", name="Upload").click()
    expect(ada_page.get_by_role("status")).to_have_text("Picture changed.")
    expect(ada_page.locator(".picture-row .avatar img")).to_be_visible()
    # Bob's page shows it beside her message and in his list, without a reload.
    expect(bob_page.locator(f'.message [data-avatar="{ada}"] img')).to_have_count(1)
    expect(bob_page.locator(f'#conversation-{chat} [data-avatar="{ada}"] img')).to_be_visible()

    ada_page.get_by_label("Name", exact=True).fill("Ada Lovelace")
    ada_page.get_by_role("button", name="Save").first.click()
    expect(ada_page.get_by_role("status")).to_have_text("Name changed.")
    expect(bob_page.locator(f'.message .author[data-user-name="{ada}"]')).to_have_text(
        "Ada Lovelace"
    )
    expect(bob_page.locator(f"#conversation-{chat} .row-title")).to_have_text("Ada Lovelace")
    assert not browse.errors, browse.errors


def test_a_name_opens_a_card_whose_message_button_starts_the_chat(browse, make):
    ada, bob, cara = make.user("Ada"), make.user("Bob"), make.user("Cara")
    group = make.group(ada, [bob, cara], "Lunch club")
    make.message(cara, group, "Soup today?")
    page = signed_in(browse, make, bob, f"/conversations/{group}")
    page.locator(".message .author", has_text="Cara").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Cara")).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    page.locator(".message .author", has_text="Cara").click()
    page.get_by_role("dialog").get_by_role("button", name="Message").click()
    page.wait_for_url("**/conversations/*")
    assert not page.url.endswith(f"/conversations/{group}")
    expect(page.locator("h1")).to_contain_text("Cara")
    assert not browse.errors, browse.errors


def test_without_javascript_the_card_is_a_page(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    group = make.group(ada, [bob], "Book club")
    make.message(ada, group, "Chapter three")
    page = signed_in(browse, make, bob, f"/conversations/{group}", javascript=False)
    page.locator(".message .author", has_text="Ada").click()
    page.wait_for_url(f"**/users/{ada}")
    expect(page.get_by_role("heading", name="Ada")).to_be_visible()
    page.get_by_role("button", name="Message").click()
    page.wait_for_url("**/conversations/*")
    expect(page.locator("h1")).to_contain_text("Ada")
