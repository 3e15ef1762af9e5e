"""Calls in Chromium: two people, each in their own browser context with a fake camera and
microphone, ringing, answering, media flowing both ways, screen sharing, hanging up, declining
and not answering."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from chipper.extensions import db
from chipper.models import Call, CallMember, utcnow

pytestmark = pytest.mark.browser
# Peer connections with fake cameras take a few seconds on two busy cores (three people in
# one Chromium, the rest of the suite's servers around them): wait longer than the default.
CONNECT_TIMEOUT = 20_000

STREAM_OPEN = """
window.__streamOpen = false;
document.addEventListener("htmx:sseOpen", () => { window.__streamOpen = true; });
"""


def open_page(browse, make, user, path: str) -> Page:
    page = browse.page()
    page.add_init_script(STREAM_OPEN)
    browse.log_in(page, make.email(user))
    page.goto(path)
    page.wait_for_function("() => window.__streamOpen === true")
    return page


def open_tab(browse, page: Page, path: str) -> Page:
    """Another tab of the same browser (and so the same person) as `page`."""
    tab = browse.tab(page)
    tab.add_init_script(STREAM_OPEN)
    tab.goto(path)
    tab.wait_for_function("() => window.__streamOpen === true")
    return tab


def remote_video_plays(page: Page) -> None:
    """The other person's tile shows moving video: it has a size and its time advances."""
    page.wait_for_function(
        """() => {
            const v = document.querySelector('.tile:not(.tile-me) video');
            return v && v.videoWidth > 0 && v.currentTime > 0;
        }"""
    )
    before = page.evaluate("document.querySelector('.tile:not(.tile-me) video').currentTime")
    page.wait_for_function(
        "t => document.querySelector('.tile:not(.tile-me) video').currentTime > t + 0.5", arg=before
    )


def test_video_call_rings_connects_shares_the_screen_and_hangs_up(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    # Bob is on the conversation list, not in the conversation.
    bob_page = open_page(browse, make, bob, "/conversations")
    ada_page = open_page(browse, make, ada, f"/conversations/{chat}")

    ada_page.get_by_role("button", name="Video call").click()
    expect(ada_page).to_have_url(re.compile(r"/calls/\d+$"))
    expect(ada_page.locator(".call-connection")).to_have_text("Ringing…")

    box = bob_page.locator("#ringing .ringing-call")
    expect(box).to_contain_text("Ada is calling you: video call")
    expect(bob_page).to_have_title(re.compile("^Incoming call"))
    # The ring tone plays (this browser allows sound without a click).
    expect(bob_page.locator("#ringing")).to_have_attribute("data-sound", "on")
    box.get_by_role("button", name="Answer").click()
    expect(bob_page).to_have_url(ada_page.url)

    for page in (ada_page, bob_page):
        expect(page.locator(".call-connection")).to_have_text("Connected", timeout=CONNECT_TIMEOUT)
        other = page.locator(".tile:not(.tile-me)")
        expect(other).to_have_attribute("data-connection", "connected")
    for page in (ada_page, bob_page):
        remote_video_plays(page)
        expect(page.locator(".call-timer")).to_have_text(re.compile(r"^0:0[0-9]$"))

    # The same call opened in a second tab of Bob's browser stays out of the way, and
    # closing that tab does not hang up.
    second = bob_page.context.new_page()
    second.goto(bob_page.url)
    expect(second.locator(".call-note")).to_contain_text("open in another tab")
    second.close()
    expect(ada_page.locator(".call-connection")).to_have_text("Connected", timeout=CONNECT_TIMEOUT)
    expect(ada_page.locator(".call-box")).to_contain_text("Bob · in the call")

    ada_page.get_by_role("button", name="Share screen").click()
    expect(ada_page.get_by_role("button", name="Stop sharing")).to_be_visible()
    expect(bob_page.locator(".call-box .call")).to_have_attribute("data-screen-sharing", "on")
    expect(bob_page.locator(".call-box")).to_contain_text("Ada · sharing their screen")
    expect(bob_page.locator(".tile:not(.tile-me)")).to_have_attribute("data-screen-sharing", "on")
    remote_video_plays(bob_page)  # the screen now, swapped in without renegotiating

    bob_page.get_by_role("button", name="Mute").click()
    expect(ada_page.locator(".tile:not(.tile-me)")).to_have_attribute("data-audio", "off")

    ada_page.get_by_role("button", name="Hang up").click()
    for page in (ada_page, bob_page):
        expect(page).to_have_url(re.compile(rf"/conversations/{chat}$"))
        expect(page.locator("#messages")).to_contain_text(re.compile(r"Video call, 0:\d\d"))
    assert not browse.errors, browse.errors


def test_declining_stops_the_ringing_and_tells_the_caller(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    bob_page = open_page(browse, make, bob, "/conversations")
    bob_tab2 = open_page(browse, make, bob, "/conversations")
    ada_page = open_page(browse, make, ada, f"/conversations/{chat}")

    ada_page.get_by_role("button", name="Audio call").click()
    expect(ada_page).to_have_url(re.compile(r"/calls/\d+$"))
    for page in (bob_page, bob_tab2):
        expect(page.locator("#ringing .ringing-call")).to_contain_text("audio call")
    bob_page.locator("#ringing").get_by_role("button", name="Decline").click()
    # Both of Bob's tabs stop ringing; Ada's call page goes back to the conversation.
    for page in (bob_page, bob_tab2):
        expect(page.locator("#ringing .ringing-call")).to_have_count(0)
        expect(page).not_to_have_title(re.compile("^Incoming call"))
    expect(ada_page).to_have_url(re.compile(rf"/conversations/{chat}$"))
    expect(ada_page.locator("#messages")).to_contain_text("Declined audio call")
    assert not browse.errors, browse.errors


def test_answering_in_one_tab_stops_the_ringing_in_the_others(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    bob_page = open_page(browse, make, bob, "/conversations")
    bob_tab2 = open_tab(browse, bob_page, f"/conversations/{chat}")
    ada_page = open_page(browse, make, ada, f"/conversations/{chat}")

    ada_page.get_by_role("button", name="Video call").click()
    for page in (bob_page, bob_tab2):
        expect(page.locator("#ringing .ringing-call")).to_contain_text("Ada is calling you")
        expect(page.locator("#ringing")).to_have_attribute("data-sound", "on")
    bob_page.locator("#ringing").get_by_role("button", name="Answer").click()
    expect(bob_page).to_have_url(re.compile(r"/calls/\d+$"))
    expect(bob_tab2.locator("#ringing .ringing-call")).to_have_count(0)
    expect(bob_tab2.locator("#ringing[data-sound]")).to_have_count(0)
    expect(bob_tab2).not_to_have_title(re.compile("^Incoming call"))
    assert not browse.errors, browse.errors


def ringing_without_a_timer(app, conversation_id: int, caller: int, callee: int, left: float):
    """A call that has rung for all but `left` seconds, started by a process that has since
    restarted: no timer will mark it missed. Returns its id."""
    with app.app_context():
        started = utcnow() - timedelta(seconds=app.config["CALL_RING_SECONDS"] - left)
        call = Call(
            conversation_id=conversation_id,
            live_conversation_id=conversation_id,
            initiated_by=caller,
            type="audio",
            status="ringing",
            created_at=started,
            updated_at=started,
        )
        call.members = [
            CallMember(user_id=caller, state="joined", joined_at=started),
            CallMember(user_id=callee, state="invited"),
        ]
        db.session.add(call)
        db.session.commit()
        return call.id


def test_a_page_stops_ringing_on_its_own_when_the_time_is_up(app, browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    bob_page = open_page(browse, make, bob, "/conversations")
    call_id = ringing_without_a_timer(app, chat, ada, bob, left=3)
    bob_page.goto("/conversations")
    expect(bob_page.locator("#ringing .ringing-call")).to_contain_text("Ada is calling you")
    # The ring runs (silently while the browser wants a click on the page before sound).
    expect(bob_page.locator("#ringing")).to_have_attribute("data-sound", re.compile("on|blocked"))

    expect(bob_page.locator("#ringing .ringing-call")).to_have_count(0, timeout=10_000)
    expect(bob_page.locator("#ringing[data-sound]")).to_have_count(0)
    expect(bob_page).not_to_have_title(re.compile("^Incoming call"))
    # The page did it by itself: nothing asked the server, which still has the call ringing
    # (reads never write; the sweep will record it missed).
    with app.app_context():
        assert db.session.scalar(sa.select(Call.status).where(Call.id == call_id)) == "ringing"
    assert not browse.errors, browse.errors


def test_an_unanswered_call_becomes_missed(app, browse, make):
    app.config["CALL_RING_SECONDS"] = 2
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    bob_page = open_page(browse, make, bob, "/conversations")
    ada_page = open_page(browse, make, ada, f"/conversations/{chat}")

    ada_page.get_by_role("button", name="Audio call").click()
    expect(bob_page.locator("#ringing .ringing-call")).to_be_visible()
    # Nobody answers: the server gives up, the ringing stops and the caller goes back.
    expect(bob_page.locator("#ringing .ringing-call")).to_have_count(0, timeout=10_000)
    expect(ada_page).to_have_url(re.compile(rf"/conversations/{chat}$"))
    expect(ada_page.locator("#messages")).to_contain_text("Missed audio call")
    # For Bob it is unread, on the list he is looking at.
    expect(bob_page.locator(".conversation-list")).to_contain_text("Missed audio call")
    expect(bob_page.locator("nav .badge")).to_have_text("1 unread")
    assert not browse.errors, browse.errors


def controls_in_view_and_own_tile_small(page: Page) -> None:
    """The other person fills the stage, your own tile sits small in a corner, and the
    control bar is on screen without scrolling."""
    height = page.viewport_size["height"]
    for name in ("Mute", "Hang up"):
        button = page.locator(".call-controls").get_by_role("button", name=name).bounding_box()
        assert button["y"] + button["height"] <= height, (name, button)
    mine = page.locator(".tile-me").bounding_box()
    other = page.locator(".tile:not(.tile-me)").bounding_box()
    assert mine["width"] * mine["height"] < other["width"] * other["height"] / 4


def test_answering_from_the_open_conversation_goes_to_the_call(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    bob_page = open_page(browse, make, bob, f"/conversations/{chat}")
    bob_page.set_viewport_size({"width": 375, "height": 812})  # Bob is on his phone
    ada_page = open_page(browse, make, ada, f"/conversations/{chat}")

    ada_page.get_by_role("button", name="Audio call").click()
    expect(ada_page).to_have_url(re.compile(r"/calls/\d+$"))
    ringing = bob_page.locator("#live-call .call")
    expect(ringing).to_contain_text("Audio call ringing")
    expect(ringing.get_by_role("button", name="Hang up")).to_be_hidden()
    # One place to answer, the incoming-call sheet: the conversation's panel shows the state.
    expect(ringing.get_by_role("button", name="Answer")).to_be_hidden()
    answer = bob_page.get_by_role("button", name="Answer", exact=True)
    expect(answer).to_have_count(1)
    expect(answer).to_be_visible()
    # On his phone the sheet (and its "ring is silent" line) leaves the composer free.
    sheet = bob_page.locator("#ringing").bounding_box()
    assert sheet["y"] + sheet["height"] <= bob_page.locator("#composer").bounding_box()["y"]
    answer.click()
    expect(bob_page).to_have_url(ada_page.url)
    # An audio call shows each person's initial instead of video.
    for page in (ada_page, bob_page):
        expect(page.locator(".call-connection")).to_have_text("Connected", timeout=CONNECT_TIMEOUT)
        other = page.locator(".tile:not(.tile-me)")
        expect(other.locator(".avatar")).to_be_visible()
        expect(other).not_to_have_class(re.compile("has-video"))
        controls_in_view_and_own_tile_small(page)
    # Bob turns his camera on: the audio call becomes a video call for Ada (renegotiated).
    bob_page.get_by_role("button", name="Camera on").click()
    expect(bob_page.get_by_role("button", name="Camera off")).to_be_visible()
    remote_video_plays(ada_page)
    expect(ada_page.locator(".tile:not(.tile-me)")).to_have_class(re.compile("has-video"))
    assert not browse.errors, browse.errors


def test_a_second_call_ringing_leaves_the_open_conversations_call_joinable(browse, make):
    ada, bob, cara, dan = (make.user(name) for name in ("Ada", "Bob", "Cara", "Dan"))
    team = make.group(ada, [bob, cara], name="Climbing")
    chat = make.private(dan, bob)
    bob_page = open_page(browse, make, bob, f"/conversations/{team}")
    ada_page = open_page(browse, make, ada, f"/conversations/{team}")
    dan_page = open_page(browse, make, dan, f"/conversations/{chat}")

    ada_page.get_by_role("button", name="Video call").click()
    sheet = bob_page.locator("#ringing")
    expect(sheet.locator(".ringing-call")).to_contain_text("Ada is calling you")
    sheet.get_by_role("button", name="Decline").click()
    expect(sheet.locator(".ringing-call")).to_have_count(0)
    # Bob said no for now; the group's call still rings for Cara, and he may still join it.
    panel_answer = bob_page.locator("#live-call .call-answer button")
    expect(panel_answer).to_be_visible()

    dan_page.get_by_role("button", name="Audio call").click()
    expect(sheet.locator(".ringing-call")).to_contain_text("Dan is calling you")
    # Dan's call is answered from the sheet; the group's call keeps its own button.
    expect(sheet.get_by_role("button", name="Answer")).to_have_count(1)
    expect(panel_answer).to_be_visible()
    panel_answer.click()
    expect(bob_page).to_have_url(ada_page.url)
    assert not browse.errors, browse.errors


def test_three_people_in_a_group_call_each_see_the_two_others(browse, make):
    ada, bob, cara = make.user("Ada"), make.user("Bob"), make.user("Cara")
    team = make.group(ada, [bob, cara], name="Climbing")
    pages = [open_page(browse, make, user, "/conversations") for user in (bob, cara, ada)]
    bob_page, cara_page, ada_page = pages
    ada_page.goto(f"/conversations/{team}")
    ada_page.get_by_role("button", name="Video call").click()
    expect(ada_page).to_have_url(re.compile(r"/calls/\d+$"))
    for page in (bob_page, cara_page):
        box = page.locator("#ringing .ringing-call")
        expect(box).to_contain_text("Ada is calling you: video call in Climbing")
        box.get_by_role("button", name="Answer").click()
        expect(page).to_have_url(ada_page.url)
    # A full mesh: everyone is connected to both others and sees both videos move.
    for page in pages:
        # Under the full suite's load a three-way mesh can take a while to form.
        expect(page.locator(".tile:not(.tile-me)")).to_have_count(2, timeout=CONNECT_TIMEOUT)
        expect(page.locator(".call-connection")).to_have_text("Connected", timeout=CONNECT_TIMEOUT)
        page.wait_for_function(
            """() => [...document.querySelectorAll('.tile:not(.tile-me) video')]
                     .every(v => v.videoWidth > 0 && v.currentTime > 0.5)"""
        )
    # Cara leaves; Ada and Bob go on together.
    cara_page.get_by_role("button", name="Hang up").click()
    expect(cara_page).to_have_url(re.compile(rf"/conversations/{team}$"))
    for page in (ada_page, bob_page):
        expect(page.locator(".tile:not(.tile-me)")).to_have_count(1)
        expect(page.locator(".call-box")).to_contain_text("Cara · left")
    assert not browse.errors, browse.errors


def test_an_offer_lost_before_the_other_page_opened_is_sent_again(browse, make):
    # Signals are live only. Ada calls and Bob answers from requests of their browsers (as
    # their ringing boxes do); Ada's call page opens first and sends Bob an offer that no page
    # of his can take yet. When Bob's call page opens, his own offer crosses hers: Ada, the
    # side that does not give way, ignores it, and must send hers again.
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    bob_page = open_page(browse, make, bob, "/conversations")
    ada_page = open_page(browse, make, ada, f"/conversations/{chat}")

    def post(page: Page, path: str, form: dict | None = None):
        response = browse.post(page, path, form=form, headers={"Accept": "application/json"})
        assert response.ok, response.text()
        return response.json()

    call_id = post(ada_page, f"/conversations/{chat}/calls", {"type": "video"})["id"]
    post(bob_page, f"/calls/{call_id}/answer")
    ada_page.goto(f"/calls/{call_id}")
    # Her page has made Bob's tile and sent him an offer; give it time to be lost.
    expect(ada_page.locator(".tile:not(.tile-me)")).to_have_count(1)
    ada_page.wait_for_timeout(1000)

    bob_page.goto(f"/calls/{call_id}")
    for page in (ada_page, bob_page):
        expect(page.locator(".call-connection")).to_have_text("Connected", timeout=CONNECT_TIMEOUT)
    for page in (ada_page, bob_page):
        remote_video_plays(page)
    assert not browse.errors, browse.errors
