"""Messages: sending and deleting, with and without JavaScript, and who may do it."""

import io
import re
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from chipper.models import Message, RefusedDraft
from chipper.services import drafts
from tests.conftest import HTMX, JSON, refused_page, text, without_tokens

MESSAGE_KEYS = {"id", "conversation_id", "user_id", "body", "type", "created_at"}
EMPTY = "Write a message before sending."


@pytest.fixture
def chat(make, ada, bob) -> int:
    """Ada and Bob's private conversation."""
    return make.private(ada, bob)


def stored(sql, chat: int) -> list[tuple]:
    """(body, deleted) of every message in the conversation, oldest first."""
    rows = sql.rows(
        sa.select(Message.body, Message.deleted_at)
        .where(Message.conversation_id == chat)
        .order_by(Message.id)
    )
    return [(body, deleted_at is not None) for body, deleted_at in rows]


# Sending


def test_send_without_javascript_redirects_back_to_the_conversation(client, sql, chat):
    page = f"/conversations/{chat}"
    response = client.submit(page, f"{page}/messages", {"body": "Hello Bob"})
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == page
    message = sql.scalar(sa.select(Message.id))
    assert location.fragment == f"m{message}"
    html = text(client.get(page))
    assert f'id="m{message}"' in html
    assert '<p class="body">Hello Bob</p>' in html


def test_send_json(client, chat, ada):
    response = client.post(f"/conversations/{chat}/messages", json={"body": "Hi"}, headers=JSON)
    assert response.status_code == 201
    body = response.get_json()
    assert body.keys() >= MESSAGE_KEYS
    assert body["conversation_id"] == chat
    assert body["user_id"] == ada
    assert body["body"] == "Hi"
    assert body["type"] == "text"
    assert body["created_at"].endswith("Z")


def test_send_htmx_returns_the_message_and_a_fresh_composer(client, sql, chat):
    response = client.post(f"/conversations/{chat}/messages", data={"body": "Hi"}, headers=HTMX)
    assert response.status_code == 201
    html = text(response)
    assert "<html" not in html
    message = sql.scalar(sa.select(Message.id))
    assert re.search(rf'<li class="message mine"\s+id="m{message}"', html)
    assert '<p class="body">Hi</p>' in html
    composer = re.search(r'<form id="composer".*?</form>', html, re.S).group(0)
    assert 'hx-swap-oob="true"' in composer
    assert re.search(r"<textarea[^>]*></textarea>", composer)
    assert 'class="error"' not in composer


def test_body_is_trimmed(client, sql, chat):
    response = client.post(
        f"/conversations/{chat}/messages", json={"body": "  \n hello there \t\n"}, headers=JSON
    )
    assert response.get_json()["body"] == "hello there"
    assert stored(sql, chat) == [("hello there", False)]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("a\x00b", "ab"),  # NUL: PostgreSQL refuses it in text
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),  # ESC: no terminal escapes
        ("next\x85line", "nextline"),  # a C1 control
        ("bell\x07 and del\x7f", "bell and del"),
        ("one\u2028two\u2029three", "one\ntwo\nthree"),  # Unicode separators: newlines
        ("line\r\nbreak\ttab", "line\nbreak\ttab"),  # a textarea's CRLF; tabs stay
    ],
)
def test_control_characters_are_dropped_from_messages(client, sql, chat, sent, kept):
    response = client.post(f"/conversations/{chat}/messages", json={"body": sent}, headers=JSON)
    assert response.status_code == 201
    assert response.get_json()["body"] == kept
    assert stored(sql, chat) == [(kept, False)]


def test_a_message_of_nothing_but_control_characters_is_refused(client, sql, chat):
    response = client.post(
        f"/conversations/{chat}/messages", json={"body": "\x00\x1b"}, headers=JSON
    )
    assert response.status_code == 422
    assert stored(sql, chat) == []


def test_a_message_of_exactly_5000_characters_is_accepted(client, sql, chat):
    body = "x" * 5000
    response = client.post(f"/conversations/{chat}/messages", data={"body": f"  {body}\n"})
    assert response.status_code == 303
    assert stored(sql, chat) == [(body, False)]


REFUSED = {
    "empty": ("", EMPTY),
    "whitespace": ("  \n\t  ", EMPTY),
    "5001 characters": ("y" * 5001, "Messages are at most 5,000 characters; this one has 5,001."),
}


@pytest.mark.parametrize(("body", "message"), REFUSED.values(), ids=REFUSED)
def test_refused_message_page_keeps_the_text(client, sql, chat, body, message):
    response = client.post(f"/conversations/{chat}/messages", data={"body": body})
    html = refused_page(client, response, chat)
    # Opening the conversation afresh shows an empty composer.
    assert "composer-error" not in text(client.get(f"/conversations/{chat}"))
    assert "<html" in html
    assert f'<p class="error" id="composer-error" role="alert">{message}</p>' in html
    assert f">{body}</textarea>" in html
    assert stored(sql, chat) == []


@pytest.mark.parametrize(("body", "message"), REFUSED.values(), ids=REFUSED)
def test_refused_message_htmx_swaps_the_composer(client, sql, chat, body, message):
    response = client.post(f"/conversations/{chat}/messages", data={"body": body}, headers=HTMX)
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#composer"
    assert response.headers["HX-Reswap"] == "outerHTML"
    html = text(response)
    assert "<html" not in html
    assert html.lstrip().startswith('<form id="composer"')
    assert message in html
    assert f">{body}</textarea>" in html
    assert stored(sql, chat) == []


@pytest.mark.parametrize(("body", "message"), REFUSED.values(), ids=REFUSED)
def test_refused_message_json(client, sql, chat, body, message):
    response = client.post(f"/conversations/{chat}/messages", json={"body": body}, headers=JSON)
    assert response.status_code == 422
    assert response.get_json() == {"error": message, "field": "body"}
    assert stored(sql, chat) == []


@pytest.mark.parametrize("payload", [{}, {"body": None}], ids=["missing", "null"])
def test_json_without_a_body_is_refused(client, sql, chat, payload):
    response = client.post(f"/conversations/{chat}/messages", json=payload, headers=JSON)
    assert response.status_code == 422
    assert response.get_json() == {"error": EMPTY, "field": "body"}
    assert stored(sql, chat) == []


HOSTILE = '<script>alert("hi")</script><img src=x onerror=alert(1)>'


def test_html_in_a_message_is_shown_as_text(client, login_client, chat, bob):
    client.post(f"/conversations/{chat}/messages", data={"body": HOSTILE})
    sent = client.post(f"/conversations/{chat}/messages", data={"body": HOSTILE}, headers=HTMX)
    pages = [
        text(sent),
        text(login_client(bob).get(f"/conversations/{chat}")),
        text(login_client(bob).get("/conversations")),
    ]
    for html in pages:
        assert "&lt;script&gt;alert(" in html
        assert "<script>alert" not in html
        assert "<img src=x" not in html


# Deleting


@pytest.fixture
def mine(make, chat, ada) -> int:
    return make.message(ada, chat, "a secret")


def test_delete_without_javascript(client, sql, chat, mine):
    page = f"/conversations/{chat}"
    response = client.submit(page, f"/messages/{mine}", {"_method": "DELETE"})
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert (location.path, location.fragment) == (page, f"m{mine}")
    html = text(client.get(page))
    assert "Message deleted" in html
    assert "a secret" not in html
    assert stored(sql, chat) == [("", True)]


def test_delete_htmx_returns_the_tombstone(client, sql, chat, mine):
    response = client.delete(f"/messages/{mine}", headers=HTMX)
    assert response.status_code == 200
    html = text(response)
    assert "<html" not in html
    assert html.lstrip().startswith("<li")
    assert f'id="m{mine}"' in html
    assert '<p class="body tombstone">Message deleted</p>' in html
    assert "a secret" not in html
    assert 'name="_method" value="DELETE"' not in html
    assert stored(sql, chat) == [("", True)]


def test_delete_json(client, sql, chat, mine):
    response = client.delete(f"/messages/{mine}", headers=JSON)
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == mine
    assert body["deleted"] is True
    assert body["body"] == ""
    assert stored(sql, chat) == [("", True)]


def test_deleting_twice_is_harmless(client, chat, mine):
    client.delete(f"/messages/{mine}", headers=JSON)
    response = client.delete(f"/messages/{mine}", headers=JSON)
    assert response.status_code == 200
    assert response.get_json()["deleted"] is True


def test_others_see_message_deleted(client, login_client, chat, bob, mine):
    client.delete(f"/messages/{mine}")
    bobs = login_client(bob)
    html = text(bobs.get(f"/conversations/{chat}"))
    assert '<p class="body tombstone">Message deleted</p>' in html
    assert "a secret" not in html
    history = bobs.get(f"/conversations/{chat}", headers=JSON).get_json()["messages"]
    assert [(m["body"], m["deleted"]) for m in history] == [("", True)]


@pytest.mark.parametrize("headers", [None, HTMX, JSON], ids=["page", "fragment", "json"])
def test_only_the_author_deletes(login_client, sql, chat, bob, mine, headers):
    response = login_client(bob).delete(f"/messages/{mine}", headers=headers)
    assert response.status_code == 403
    if headers is JSON:
        assert response.get_json() == {"error": "You can only delete your own messages."}
    assert stored(sql, chat) == [("a secret", False)]


@pytest.mark.parametrize("headers", [None, JSON], ids=["page", "json"])
def test_non_participants_cannot_see_or_delete_messages(
    make, login_client, sql, chat, mine, headers
):
    outsider = login_client(make.user("Eve"))
    deleted = outsider.delete(f"/messages/{mine}", headers=headers)
    missing = outsider.delete("/messages/999999", headers=headers)
    assert deleted.status_code == missing.status_code == 404
    assert without_tokens(text(deleted)) == without_tokens(text(missing))
    if headers:
        assert deleted.get_json() == {"error": "Message not found."}
    sent = outsider.post(f"/conversations/{chat}/messages", data={"body": "hi"}, headers=headers)
    assert sent.status_code == 404
    assert stored(sql, chat) == [("a secret", False)]


# Signed-out visitors and CSRF


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("post", "/conversations/{chat}/messages", {"body": "hi"}),
        ("delete", "/messages/{mine}", None),
    ],
    ids=["send", "delete"],
)
@pytest.mark.parametrize("headers", [None, JSON], ids=["page", "json"])
def test_signed_out_visitors_are_sent_to_login(
    client, sql, chat, mine, method, path, data, headers
):
    client.post("/logout")
    url = path.format(chat=chat, mine=mine)
    response = getattr(client, method)(url, data=data, headers=headers)
    if headers:
        assert response.status_code == 401
        assert response.get_json() == {"error": "Log in first."}
    else:
        assert response.status_code == 303
        assert urlsplit(response.headers["Location"]).path == "/login"
    assert stored(sql, chat) == [("a secret", False)]


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("post", "/conversations/{chat}/messages", {"body": "hi"}),
        ("post", "/messages/{mine}", {"_method": "DELETE"}),
        ("delete", "/messages/{mine}", None),
    ],
    ids=["send", "delete form", "delete"],
)
@pytest.mark.parametrize("headers", [None, HTMX, JSON], ids=["page", "fragment", "json"])
def test_missing_csrf_token_is_refused(client, sql, chat, mine, method, path, data, headers):
    url = path.format(chat=chat, mine=mine)
    response = getattr(client, method)(url, data=data, headers=headers, csrf=False)
    assert response.status_code == 400
    if headers is JSON:
        assert "form expired" in response.get_json()["error"]
    else:
        assert "Your form expired or came from another site." in text(response)
    assert stored(sql, chat) == [("a secret", False)]


def test_a_page_left_open_for_two_days_can_still_send(client, sql, chat, monkeypatch):
    page = f"/conversations/{chat}"
    token = client.csrf_from_page(page)
    later = time.time() + 2 * 24 * 3600
    monkeypatch.setattr("itsdangerous.timed.time", SimpleNamespace(time=lambda: later))
    response = client.post(
        f"{page}/messages", data={"body": "still here", "csrf_token": token}, csrf=False
    )
    assert response.status_code == 303
    assert stored(sql, chat) == [("still here", False)]


def drafts_kept(sql) -> list[tuple]:
    return sql.rows(sa.select(RefusedDraft.conversation_id, RefusedDraft.body))


SVG = b"<svg xmlns='http://www.w3.org/2000/svg'/>"


def test_a_long_refused_text_comes_back_whole_and_stays_through_a_reload(client, sql, chat):
    """5,000 two-byte letters: far more than a cookie could carry."""
    body = "é" * 5000
    data = {"body": body, "file": (io.BytesIO(SVG), "x.svg")}
    response = client.post(f"/conversations/{chat}/messages", data=data)
    html = refused_page(client, response, chat)
    assert f">{body}</textarea>" in html and "composer-error" in html
    # Reading the page does not use it up: a reload shows it again.
    assert f">{body}</textarea>" in text(client.get(response.headers["Location"]))
    assert drafts_kept(sql) == [(chat, body)]


def test_a_refused_text_with_controls_comes_back_without_them(client, chat):
    data = {"body": "a\x00b\x1bc", "file": (io.BytesIO(SVG), "x.svg")}
    html = refused_page(client, client.post(f"/conversations/{chat}/messages", data=data), chat)
    assert ">abc</textarea>" in html


def test_a_send_from_the_refilled_composer_drops_the_kept_text(client, sql, chat):
    data = {"body": "plan", "file": (io.BytesIO(SVG), "x.svg")}
    refused_page(client, client.post(f"/conversations/{chat}/messages", data=data), chat)
    response = client.post(
        f"/conversations/{chat}/messages", data={"body": "plan", "from_draft": "1"}
    )
    assert response.status_code == 303
    assert drafts_kept(sql) == []
    assert "composer-error" not in text(client.get(f"/conversations/{chat}?refused=1"))
    assert stored(sql, chat) == [("plan", False)]


def test_the_kept_text_is_for_the_sign_in_that_typed_it(client, chat, ada, login_client):
    data = {"body": "only here", "file": (io.BytesIO(SVG), "x.svg")}
    refused_page(client, client.post(f"/conversations/{chat}/messages", data=data), chat)
    elsewhere = login_client(ada)
    assert "only here" not in text(elsewhere.get(f"/conversations/{chat}?refused=1"))


def test_a_kept_text_goes_after_its_time(app, client, sql, chat):
    data = {"body": "old words", "file": (io.BytesIO(SVG), "x.svg")}
    refused_page(client, client.post(f"/conversations/{chat}/messages", data=data), chat)
    app.config["DRAFT_KEEP_SECONDS"] = 0
    assert "old words" not in text(client.get(f"/conversations/{chat}?refused=1"))
    with app.app_context():
        assert drafts.prune() == 1
    assert drafts_kept(sql) == []


def test_logging_out_drops_a_carried_text(client, sql, auth, chat, ada):
    """Nobody who signs in next on this browser sees the text of a refused send."""
    svg = (io.BytesIO(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), "x.svg")
    data = {"body": "my secret plan", "file": svg}
    assert client.post(f"/conversations/{chat}/messages", data=data).status_code == 303
    client.post("/logout")
    assert drafts_kept(sql) == []
    auth.login(ada)
    html = text(client.get(f"/conversations/{chat}?refused=1"))
    assert "my secret plan" not in html and "composer-error" not in html
