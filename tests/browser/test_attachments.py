"""Sending a photo or a voice note through the real pages, with and without JavaScript."""

import io
import random
import re

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

# Runs before the page's own scripts: notes the upload progress bar and the event stream.
WATCH = """
window.__sawProgress = false;
window.__streamOpen = false;
document.addEventListener("htmx:sseOpen", () => { window.__streamOpen = true; });
new MutationObserver(() => {
  if (document.querySelector("#composer progress.upload")) window.__sawProgress = true;
}).observe(document, { childList: true, subtree: true });
"""


def noisy_png(width: int = 1000, height: int = 800) -> bytes:
    """A photo-sized PNG that does not compress (about 2 MB): the upload takes a few steps."""
    rng = random.Random(7)
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def on_conversation(browse, make, user_id: int, conversation_id: int, javascript=True) -> Page:
    page = browse.page(javascript=javascript)
    page.add_init_script(WATCH)
    browse.log_in(page, make.email(user_id))
    page.goto(f"/conversations/{conversation_id}")
    if javascript:
        page.wait_for_function("() => window.__streamOpen === true")
    return page


def first_file_field(page: Page):
    return page.locator('#composer input[type="file"]').first


def test_photo_with_preview_and_progress_reaches_both_pages(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    bob_page = on_conversation(browse, make, bob, chat)
    ada_page = on_conversation(browse, make, ada, chat)

    first_file_field(ada_page).set_input_files(
        {"name": "harbour.png", "mimeType": "image/png", "buffer": noisy_png()}
    )
    preview = ada_page.locator("#composer .attach-preview")
    expect(preview.locator("img")).to_be_visible()
    expect(preview).to_contain_text("harbour.png")
    ada_page.get_by_label("Message", exact=True).fill("The view from here")
    ada_page.locator("#composer").get_by_role("button", name="Send").click()

    for page in (ada_page, bob_page):
        message = page.locator("#messages .message").filter(has_text="The view from here")
        expect(message).to_have_count(1)
        thumbnail = message.locator(".attachment img")
        expect(thumbnail).to_be_visible()
        # The thumbnail really loaded, at the proportions the page reserved for it.
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
        )
        assert thumbnail.get_attribute("width") == "1000"
        assert thumbnail.get_attribute("height") == "800"
        expect(message.locator("figcaption")).to_contain_text("harbour.png")
    assert ada_page.evaluate("() => window.__sawProgress"), "no upload progress bar was shown"
    expect(ada_page.locator("#composer .attach-preview")).to_have_count(0)
    expect(ada_page.locator("#composer progress")).to_have_count(0)
    assert not browse.errors, browse.errors


def test_photo_without_javascript(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    page = on_conversation(browse, make, ada, chat, javascript=False)
    first_file_field(page).set_input_files(
        {"name": "cat.png", "mimeType": "image/png", "buffer": noisy_png(300, 200)}
    )
    page.locator("#composer").get_by_role("button", name="Send").click()
    expect(page).to_have_url(re.compile(rf"/conversations/{chat}#m\d+$"))
    image = page.locator("#messages .attachment img")
    expect(image).to_be_visible()
    assert image.get_attribute("width") == "300"

    bob_page = on_conversation(browse, make, bob, chat, javascript=False)
    expect(bob_page.locator("#messages .attachment img")).to_be_visible()
    expect(bob_page.locator("#messages figcaption")).to_contain_text("cat.png")


def test_a_dropped_file_is_attached_and_can_be_removed(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    page = on_conversation(browse, make, ada, make.private(ada, bob))
    page.evaluate(
        """() => {
          const transfer = new DataTransfer();
          transfer.items.add(new File(["%PDF-1.4 hello"], "plan.pdf", { type: "application/pdf" }));
          const target = document.querySelector(".timeline");
          const options = { bubbles: true, cancelable: true, dataTransfer: transfer };
          target.dispatchEvent(new DragEvent("dragover", options));
          target.dispatchEvent(new DragEvent("drop", options));
        }"""
    )
    preview = page.locator("#composer .attach-preview")
    expect(preview).to_contain_text("plan.pdf")
    assert (
        page.evaluate("() => document.querySelector('#composer input[type=file]').files[0].name")
        == "plan.pdf"
    )
    preview.get_by_role("button", name="Remove plan.pdf").click()
    expect(preview).to_have_count(0)
    assert (
        page.evaluate("() => document.querySelector('#composer input[type=file]').files.length")
        == 0
    )


def test_record_and_send_a_voice_note(browse, make):
    """Chromium's fake microphone; what MediaRecorder makes must pass the server's checks."""
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    page = on_conversation(browse, make, ada, chat)
    record = page.locator("#composer").get_by_role("button", name="Record")
    record.click()
    stop = page.locator("#composer").get_by_role("button", name=re.compile(r"^Stop \d:\d\d$"))
    expect(stop).to_be_visible()
    page.wait_for_timeout(1500)
    stop.click()
    expect(page.locator("#composer .attach-preview audio")).to_have_count(1)
    expect(page.locator("#composer .attach-preview")).to_contain_text("voice-note.")
    page.locator("#composer").get_by_role("button", name="Send").click()

    audio = page.locator("#messages .attachment-audio audio")
    expect(audio).to_have_count(1)
    expect(page.locator("#composer .error")).to_have_count(0)
    assert not browse.errors, browse.errors


def test_a_real_video_plays_for_the_other_person(browse, make):
    """VP8 + Opus in WebM, served by the app: Chromium reads its picture size and plays it."""
    from tests import media_samples

    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    bob_page = on_conversation(browse, make, bob, chat)
    ada_page = on_conversation(browse, make, ada, chat)
    first_file_field(ada_page).set_input_files(
        {"name": "clip.webm", "mimeType": "video/webm", "buffer": media_samples.webm_video()}
    )
    ada_page.locator("#composer").get_by_role("button", name="Send").click()

    video = bob_page.locator("#messages .attachment video")
    expect(video).to_have_count(1)
    handle = video.element_handle()
    bob_page.evaluate("(v) => { v.muted = true; return v.play(); }", handle)
    bob_page.wait_for_function("(v) => v.videoWidth === 64 && v.currentTime > 0", arg=handle)
    assert not browse.errors, browse.errors


def test_a_pasted_picture_is_attached(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    page = on_conversation(browse, make, ada, make.private(ada, bob))
    page.evaluate(
        """async () => {
          const canvas = document.createElement("canvas");
          canvas.width = 40; canvas.height = 30;
          canvas.getContext("2d").fillRect(0, 0, 40, 30);
          const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
          const transfer = new DataTransfer();
          transfer.items.add(new File([blob], "screenshot.png", { type: "image/png" }));
          const box = document.querySelector("#composer textarea");
          const options = { bubbles: true, cancelable: true, clipboardData: transfer };
          box.dispatchEvent(new ClipboardEvent("paste", options));
        }"""
    )
    expect(page.locator("#composer .attach-preview img")).to_be_visible()
    page.locator("#composer").get_by_role("button", name="Send").click()
    expect(page.locator("#messages .attachment img")).to_have_attribute("width", "40")
