"""Reactions: POST /messages/<id>/reactions toggles the reader's emoji (JSON, htmx, a plain form
without JavaScript), who may, what counts as one emoji, the limit, and every open tab seeing
the new counts."""

import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from chipper.models import Reaction
from chipper.services.reactions import MAX_DISTINCT
from tests.conftest import HTMX, JSON, text
from tests.realtime_support import wait_for


@pytest.fixture
def chat(make, ada, bob) -> int:
    return make.private(ada, bob)


@pytest.fixture
def theirs(make, bob, chat) -> int:
    """Bob's message in the chat with Ada; `client` is signed in as Ada."""
    return make.message(bob, chat, "lunch?")


def react(client, message_id: int, emoji, headers=JSON):
    return client.post(f"/messages/{message_id}/reactions", data={"emoji": emoji}, headers=headers)


def stored(sql, message_id: int) -> list[tuple]:
    return sql.rows(
        sa.select(Reaction.user_id, Reaction.emoji)
        .where(Reaction.message_id == message_id)
        .order_by(Reaction.id)
    )


def test_a_reaction_is_given_then_taken_back(client, sql, ada, theirs):
    response = react(client, theirs, "👍")
    assert response.status_code == 200
    assert response.get_json()["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [ada]}]
    assert stored(sql, theirs) == [(ada, "👍")]
    again = react(client, theirs, "👍")
    assert again.get_json()["reactions"] == []
    assert stored(sql, theirs) == []


def test_reactions_are_counted_per_emoji_in_the_order_first_given(
    client, login_client, sql, ada, bob, cara, make
):
    group = make.group(ada, [bob, cara])
    message = make.message(ada, group, "party at mine")
    react(login_client(bob), message, "🎉")
    react(client, message, "❤️")
    react(login_client(cara), message, "🎉")
    shown = client.get(f"/messages/{message}", headers=JSON).get_json()["reactions"]
    assert shown == [
        {"emoji": "🎉", "count": 2, "user_ids": [bob, cara]},
        {"emoji": "❤️", "count": 1, "user_ids": [ada]},
    ]


@pytest.mark.parametrize(
    "typed, kept",
    [
        ("❤", "❤️"),
        ("👍🏽", "👍🏽"),
        ("🇫🇷", "🇫🇷"),
        ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),
        (" 🎉 ", "🎉"),
    ],
)
def test_one_emoji_is_one_grapheme_and_one_spelling(client, sql, theirs, typed, kept):
    assert react(client, theirs, typed).status_code == 200
    assert [emoji for _, emoji in stored(sql, theirs)] == [kept]


def test_the_two_spellings_of_a_heart_are_one_reaction(client, sql, theirs):
    react(client, theirs, "❤")
    react(client, theirs, "❤️")
    assert stored(sql, theirs) == []


@pytest.mark.parametrize("typed", ["", "a", "👍👍", ":+1:", "<b>👍</b>", "👍" * 20, "1"])
def test_anything_but_one_emoji_is_refused(client, sql, theirs, typed):
    response = react(client, theirs, typed)
    assert response.status_code == 422
    assert response.get_json()["field"] == "emoji"
    assert stored(sql, theirs) == []


def test_a_message_takes_at_most_twenty_different_reactions(client, sql, theirs):
    faces = [chr(0x1F600 + i) for i in range(MAX_DISTINCT + 1)]
    for face in faces[:MAX_DISTINCT]:
        assert react(client, theirs, face).status_code == 200
    refused = react(client, theirs, faces[-1])
    assert refused.status_code == 422
    assert "at most 20" in refused.get_json()["error"]
    assert len(stored(sql, theirs)) == MAX_DISTINCT
    # Taking one back is always possible.
    assert react(client, theirs, faces[0]).status_code == 200


def test_an_outsider_gets_404_whatever_they_send(login_client, make, theirs, sql):
    stranger = login_client(make.user("Stranger"))
    for body in ("👍", "not an emoji", ""):
        assert react(stranger, theirs, body).status_code == 404
    assert stranger.get(f"/messages/{theirs}/reactions", headers=JSON).status_code == 404
    assert stored(sql, theirs) == []


def test_a_deleted_message_takes_no_reaction_and_loses_its_own(
    client, login_client, sql, bob, theirs
):
    react(client, theirs, "😂")
    assert login_client(bob).delete(f"/messages/{theirs}", headers=JSON).status_code == 200
    assert stored(sql, theirs) == []
    assert react(client, theirs, "😂").status_code == 409


def test_with_htmx_the_message_comes_back_with_the_reaction_marked_yours(client, ada, theirs):
    response = react(client, theirs, "🙏", headers=HTMX)
    html = text(response)
    assert html.startswith("<li") and f'id="m{theirs}"' in html
    chip = re.search(r'<button type="submit" class="reaction yours"[^>]*>', html).group(0)
    assert 'value="🙏"' in chip and f'data-user-ids=" {ada} "' in chip
    assert 'aria-pressed="true"' in chip
    assert '<span class="who" role="tooltip"' in html and ">Ada</span>" in html


def test_without_javascript_the_menu_form_reacts_and_comes_back(client, chat, theirs, ada):
    page = f"/conversations/{chat}"
    html = text(client.get(page))
    # The menu's palette: plain forms, one per quick choice, and one for any emoji.
    assert html.count(f'action="/messages/{theirs}/reactions"') == 7
    response = client.submit(page, f"/messages/{theirs}/reactions", {"emoji": "😮"})
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert (location.path, location.fragment) == (page, f"m{theirs}")
    shown = text(client.get(page))
    assert 'class="reaction yours"' in shown
    # Who reacted: a page of its own, with a form for any emoji.
    listing = text(client.get(f"/messages/{theirs}/reactions"))
    assert '<span class="emoji">😮</span> 1: Ada' in listing and 'name="emoji"' in listing


def test_the_reaction_list_as_json(client, theirs, ada):
    react(client, theirs, "👍")
    listing = client.get(f"/messages/{theirs}/reactions", headers=JSON).get_json()
    assert listing == [{"emoji": "👍", "count": 1, "user_ids": [ada]}]


def test_the_partial_everyone_gets_marks_no_one(app, make, ada, bob, chat, theirs, client):
    """The live partial is the same for every reader: yours is marked by each page's script."""
    react(client, theirs, "👍")
    with app.test_request_context():
        from chipper.extensions import db
        from chipper.models import Message
        from chipper.realtime import events

        html = events.render("messages/_message.html", message=db.session.get(Message, theirs))
    assert 'class="reaction"' in html and "yours" not in html
    assert f'data-user-ids=" {ada} "' in html


def test_every_open_tab_sees_the_reaction_and_a_reconnecting_one_too(make, visit, live):
    ada, bob, cara = make.user("Ada"), make.user("Bob"), make.user("Cara")
    chat = make.private(ada, bob)
    message = make.message(bob, chat, "lunch?")
    alice, bobby, carol = visit(ada, live), visit(bob, live), visit(cara, live)
    bob_page, bob_api, cara_page = (
        bobby.stream(),
        bobby.stream(params={"format": "json"}),
        carol.stream(),
    )
    wait_for(bob_page, lambda e: e.name == "hello")

    response = alice.request("POST", f"/messages/{message}/reactions", data={"emoji": "🍕"})
    assert response.status_code == 200, response.text
    frame = wait_for(bob_page, lambda e: e.name == f"message-updated-{chat}")
    assert f'id="m{message}"' in frame.data and 'value="🍕"' in frame.data
    update = wait_for(bob_api, lambda e: e.name == "message-updated")
    assert update.json()["reactions"] == [{"emoji": "🍕", "count": 1, "user_ids": [ada]}]
    # Cara is not in the chat.
    side = make.private(ada, cara)
    sync = alice.send(side, "sync")["id"]
    wait_for(cara_page, lambda e: e.name == f"message-created-{side}" and f'id="m{sync}"' in e.data)
    assert not [e for e in cara_page.events if e.name.startswith("message-updated")]

    # Taken back: the chip goes from every tab; a tab that dropped before gets both.
    alice.request("POST", f"/messages/{message}/reactions", data={"emoji": "🍕"})
    gone = wait_for(
        bob_page, lambda e: e.name == f"message-updated-{chat}" and int(e.id) > int(frame.id)
    )
    assert "🍕" not in gone.data
    resumed = bobby.stream(headers={"Last-Event-ID": str(int(frame.id) - 1)})
    replayed = [wait_for(resumed, lambda e: e.name == f"message-updated-{chat}")]
    replayed.append(
        wait_for(
            resumed,
            lambda e: e.name == f"message-updated-{chat}" and e.id != replayed[0].id,
        )
    )
    assert [e.id for e in replayed] == [frame.id, gone.id]
