"""Editing your own message: PATCH /messages/<id> (JSON, htmx, and a form page without
JavaScript), who may, for how long, and every open tab seeing the new text."""

import io
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from PIL import Image

from chipper.models import Event, Message, utcnow
from tests.conftest import HTMX, JSON, text
from tests.realtime_support import wait_for


@pytest.fixture
def chat(make, ada, bob) -> int:
    return make.private(ada, bob)


@pytest.fixture
def mine(make, ada, chat) -> int:
    """Ada's message "helo" in the chat with Bob; `client` is signed in as Ada."""
    return make.message(ada, chat, "helo")


def row(sql, message_id: int) -> tuple:
    return sql.rows(sa.select(Message.body, Message.edited_at).where(Message.id == message_id))[0]


def patch(client, message_id: int, body, headers=JSON):
    return client.patch(f"/messages/{message_id}", json={"body": body}, headers=headers)


# What the author sees


def test_edit_json_changes_the_text_and_says_when(client, sql, mine):
    response = patch(client, mine, "  hello  ")
    assert response.status_code == 200
    body = response.get_json()
    assert body["body"] == "hello" and body["id"] == mine
    assert body["edited_at"] is not None
    stored, edited_at = row(sql, mine)
    assert stored == "hello" and edited_at is not None
    assert client.get(f"/messages/{mine}", headers=JSON).get_json()["body"] == "hello"


def test_a_message_never_edited_says_so_in_json(client, mine):
    assert client.get(f"/messages/{mine}", headers=JSON).get_json()["edited_at"] is None


def test_edit_without_javascript_is_a_form_page_then_back(client, chat, mine):
    form_page = f"/messages/{mine}/edit"
    html = text(client.get(form_page))
    assert "<h1>Edit message</h1>" in html
    assert ">helo</textarea>" in html
    assert "hx-patch" not in html  # a plain form, whether or not the page runs scripts
    response = client.submit(form_page, f"/messages/{mine}", {"_method": "PATCH", "body": "hello"})
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert (location.path, location.fragment) == (f"/conversations/{chat}", f"m{mine}")
    page = text(client.get(f"/conversations/{chat}"))
    assert '<p class="body">hello <span class="edited"' in page
    assert ">(edited)</span></p>" in page


def test_edit_with_htmx_swaps_the_form_in_and_the_message_back(client, mine):
    form = text(client.get(f"/messages/{mine}/edit", headers=HTMX))
    assert form.startswith(f'<li class="message mine editing" id="m{mine}"')
    assert f'hx-patch="/messages/{mine}"' in form
    response = client.patch(f"/messages/{mine}", data={"body": "hello"}, headers=HTMX)
    assert response.status_code == 200
    html = text(response)
    assert html.startswith("<li") and f'id="m{mine}"' in html
    assert '<p class="body">hello <span class="edited"' in html and "(edited)" in html
    # Cancel brings the message back as it is.
    cancelled = text(client.get(f"/messages/{mine}", headers=HTMX))
    assert f'id="m{mine}"' in cancelled and "editing" not in cancelled


def test_the_same_text_again_changes_nothing(client, sql, mine):
    assert patch(client, mine, "helo").status_code == 200
    assert row(sql, mine) == ("helo", None)


def test_a_photos_caption_can_be_changed_or_cleared_and_the_photo_stays(client, sql, chat):
    picture = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(picture, "PNG")
    sent = client.post(
        f"/conversations/{chat}/messages",
        data={"body": "look", "file": (io.BytesIO(picture.getvalue()), "red.png")},
        headers=JSON,
    ).get_json()
    assert patch(client, sent["id"], "our cat").get_json()["body"] == "our cat"
    cleared = patch(client, sent["id"], "")
    assert cleared.status_code == 200
    assert cleared.get_json()["body"] == ""
    assert cleared.get_json()["attachment"]["id"] == sent["attachment"]["id"]


# Refusals, with the reason where the person is


@pytest.mark.parametrize(
    ("body", "reason"),
    [("   ", "Write a message"), ("x" * 5001, "at most 5,000 characters")],
)
def test_a_bad_text_is_refused_and_the_message_kept(client, sql, mine, body, reason):
    response = patch(client, mine, body)
    assert response.status_code == 422
    assert reason in response.get_json()["error"]
    assert response.get_json()["field"] == "body"
    assert row(sql, mine) == ("helo", None)


def test_a_refused_edit_with_htmx_keeps_the_typed_text_in_the_form(client, sql, mine):
    response = client.patch(f"/messages/{mine}", data={"body": " "}, headers=HTMX)
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == f"#m{mine}"
    html = text(response)
    assert "editing" in html and "Write a message before sending." in html
    assert 'aria-invalid="true"' in html
    assert row(sql, mine) == ("helo", None)


def test_a_refused_edit_without_javascript_shows_the_form_again(client, mine):
    too_long = "y" * 5001
    response = client.submit(
        f"/messages/{mine}/edit", f"/messages/{mine}", {"_method": "PATCH", "body": too_long}
    )
    assert response.status_code == 422
    html = text(response)
    assert "<h1>Edit message</h1>" in html and "at most 5,000 characters" in html
    assert f">{too_long}</textarea>" in html


def test_only_the_author_edits(login_client, sql, bob, mine):
    bobs = login_client(bob)
    assert patch(bobs, mine, "hacked").status_code == 403
    assert bobs.get(f"/messages/{mine}/edit").status_code == 403
    assert row(sql, mine) == ("helo", None)


def test_outsiders_get_404_whatever_they_send(login_client, make, sql, mine):
    eve = login_client(make.user("Eve"))
    for body in ("hacked", "", None):
        assert patch(eve, mine, body).status_code == 404
    assert eve.get(f"/messages/{mine}").status_code == 404
    assert eve.get(f"/messages/{mine}/edit").status_code == 404
    assert eve.get(f"/messages/{mine + 1000}/edit").status_code == 404
    assert row(sql, mine) == ("helo", None)


def test_signed_out_visitors_cannot_edit(app, sql, mine):
    anonymous = app.test_client()
    assert patch(anonymous, mine, "hacked").status_code == 401
    assert row(sql, mine) == ("helo", None)


def test_an_edit_without_the_csrf_token_is_refused(client, sql, mine):
    response = client.patch(f"/messages/{mine}", json={"body": "x"}, headers=JSON, csrf=False)
    assert response.status_code == 400
    assert row(sql, mine) == ("helo", None)


def test_a_deleted_message_cannot_be_edited(client, sql, mine):
    client.delete(f"/messages/{mine}", headers=JSON)
    response = patch(client, mine, "back again")
    assert response.status_code == 409
    assert row(sql, mine)[0] == ""


def test_a_call_entry_cannot_be_edited(client, sql, chat, ada):
    now = utcnow()
    sql.write(
        sa.insert(Message).values(
            conversation_id=chat,
            user_id=ada,
            body="Missed audio call",
            type="call",
            created_at=now,
            updated_at=now,
        )
    )
    entry = sql.scalar(sa.select(Message.id).where(Message.type == "call"))
    assert patch(client, entry, "Great call").status_code == 403
    assert row(sql, entry) == ("Missed audio call", None)


def test_edits_stop_after_the_window(app, client, sql, mine):
    hour_ago = utcnow() - timedelta(minutes=61)
    sql.write(sa.update(Message).where(Message.id == mine).values(created_at=hour_ago))
    response = patch(client, mine, "too late")
    assert response.status_code == 409
    assert "60 minutes" in response.get_json()["error"]
    assert client.get(f"/messages/{mine}/edit").status_code == 409
    # htmx gets the reason in a header, which the page shows in its notice.
    late = client.get(f"/messages/{mine}/edit", headers=HTMX)
    assert late.status_code == 409
    assert "60%20minutes" in late.headers["X-Chipper-Reason"]
    # 0: no limit.
    app.config["EDIT_WINDOW_MINUTES"] = 0
    assert patch(client, mine, "late but fine").status_code == 200


# What everyone else sees


def test_the_other_person_sees_the_new_text_and_edited(login_client, chat, bob, client, mine):
    patch(client, mine, "<b>hello</b>")
    page = text(login_client(bob).get(f"/conversations/{chat}"))
    assert '<p class="body">&lt;b&gt;hello&lt;/b&gt; <span class="edited"' in page
    assert "(edited)" in page
    listed = login_client(bob).get("/conversations", headers=JSON).get_json()
    assert listed["conversations"][0]["last_message"]["body"] == "<b>hello</b>"


def test_every_open_tab_is_told_and_a_reconnecting_tab_too(make, visit, live):
    ada, bob, cara = make.user("Ada"), make.user("Bob"), make.user("Cara")
    chat, side = make.private(ada, bob), make.private(ada, cara)
    message = make.message(ada, chat, "helo")
    alice, bobby, carol = visit(ada, live), visit(bob, live), visit(cara, live)
    bob_page, bob_api = bobby.stream(), bobby.stream(params={"format": "json"})
    cara_page = carol.stream()
    wait_for(bob_page, lambda e: e.name == "hello")

    response = alice.request("PATCH", f"/messages/{message}", json={"body": "<i>hello</i>"})
    assert response.status_code == 200, response.text
    frame = wait_for(bob_page, lambda e: e.name == f"message-updated-{chat}")
    assert f'id="m{message}"' in frame.data
    assert "&lt;i&gt;hello&lt;/i&gt;" in frame.data and "<i>" not in frame.data
    assert "(edited)" in frame.data
    wait_for(bob_page, lambda e: e.name == "conversations-changed" and e.id == frame.id)
    update = wait_for(bob_api, lambda e: e.name == "message-updated")
    assert update.json()["body"] == "<i>hello</i>" and update.json()["edited_at"]

    # Cara is not in the chat: what reaches her after the edit is her own chat's message.
    sync = f'id="m{alice.send(side, "sync")["id"]}"'
    wait_for(cara_page, lambda e: e.name == f"message-created-{side}" and sync in e.data)
    assert not [e for e in cara_page.events if e.name.startswith("message-updated")]

    # A reply's quote follows the edit of its original.
    answer = make.message(bob, chat, "what?")
    with_quote = bobby.request(
        "POST", f"/conversations/{chat}/messages", json={"body": "ok", "reply_to": message}
    ).json()["id"]
    alice.request("PATCH", f"/messages/{message}", json={"body": "hello again"})
    requoted = wait_for(
        bob_page, lambda e: e.name == f"message-updated-{chat}" and f'id="m{with_quote}"' in e.data
    )
    assert "hello again" in requoted.data
    assert answer

    # A tab that dropped just before the edit gets it on reconnecting.
    resumed = bobby.stream(headers={"Last-Event-ID": str(int(frame.id) - 1)})
    again = wait_for(resumed, lambda e: e.name == f"message-updated-{chat}")
    assert again.id == frame.id


def test_replays_keep_no_replaced_or_deleted_text(client, login_client, sql, chat, bob, mine):
    """What a reconnecting tab is sent again is kept in the events table: after an edit or a
    deletion it holds the message (and quotes of it) only as they now are."""

    def stored() -> list[str]:
        return sql.scalars(sa.select(Event.payload).order_by(Event.id))

    patch(client, mine, "my door code is 4321")
    reply = login_client(bob).post(
        f"/conversations/{chat}/messages", json={"body": "noted", "reply_to": mine}, headers=JSON
    )
    assert reply.status_code == 201
    before = len(stored())
    assert any("4321" in payload for payload in stored())
    patch(client, mine, "see you at the gate")
    assert not [payload for payload in stored() if "4321" in payload or "helo" in payload]
    # Each event is still there to replay, showing the message as it now is.
    assert len(stored()) == before + 2  # the edit, and the reply's quote
    # Its three (sent, edited twice) and the reply's two (sent, its quote changed).
    assert sum("see you at the gate" in payload for payload in stored()) == 5

    assert client.delete(f"/messages/{mine}", headers=JSON).status_code == 200
    assert not [payload for payload in stored() if "see you at the gate" in payload]
    assert sum("Original message deleted" in payload for payload in stored()) == 3
