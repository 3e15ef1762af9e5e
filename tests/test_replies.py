"""Replies: a message answering another of its conversation shows a quote of it (author and
first line), which opens the original; the composer answers a message with or without
JavaScript; the history opens around a message."""

import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from chipper.models import Message
from tests.conftest import HTMX, JSON, text
from tests.realtime_support import wait_for

PAGE = 6


@pytest.fixture
def app_config() -> dict:
    return {"MESSAGES_PER_PAGE": PAGE}


@pytest.fixture
def chat(make, ada, bob) -> int:
    return make.private(ada, bob)


@pytest.fixture
def question(make, bob, chat) -> int:
    """Bob asks Ada something over two lines; `client` is signed in as Ada."""
    return make.message(bob, chat, "Dinner on Friday?\nI can cook.")


def reply(client, chat: int, reply_to, body="Yes please", headers=JSON):
    return client.post(
        f"/conversations/{chat}/messages",
        json={"body": body, "reply_to": reply_to},
        headers=headers,
    )


def replies(sql) -> list[tuple]:
    return sql.rows(sa.select(Message.body, Message.reply_to_id).where(Message.body != "x"))


def test_a_reply_carries_its_quote_in_json(client, chat, question):
    response = reply(client, chat, question)
    assert response.status_code == 201
    assert response.get_json()["reply_to"] == {
        "id": question,
        "author_name": "Bob",
        "excerpt": "Dinner on Friday?",
        "deleted": False,
    }
    history = client.get(f"/conversations/{chat}", headers=JSON).get_json()["messages"]
    assert [m["reply_to"] and m["reply_to"]["id"] for m in history] == [None, question]


def test_the_page_shows_the_quote_linking_to_the_original(client, chat, question):
    reply(client, chat, question)
    html = text(client.get(f"/conversations/{chat}"))
    quote = re.search(r'<a class="quote" href="([^"]+)" data-jump="m(\d+)">(.*?)</a>', html, re.S)
    assert quote, html
    href, jump, inner = quote.groups()
    assert int(jump) == question
    assert href == f"/conversations/{chat}?around={question}#m{question}"
    assert '<span class="quote-author">Bob</span>' in inner
    assert '<span class="quote-text">Dinner on Friday?</span>' in inner
    assert "I can cook" not in inner


def test_a_long_first_line_is_cut_in_the_quote(client, make, bob, chat):
    long = make.message(bob, chat, "word " * 60)
    assert reply(client, chat, long).get_json()["reply_to"]["excerpt"].endswith("…")
    assert len(reply(client, chat, long).get_json()["reply_to"]["excerpt"]) <= 100


@pytest.mark.parametrize("bad", ["abc", "-1", "99999", "1e3", "9" * 40, str(2**31), "0"])
def test_a_reply_to_no_message_of_this_conversation_is_refused(client, sql, chat, question, bad):
    response = reply(client, chat, bad)
    assert response.status_code == 422
    assert response.get_json()["field"] == "reply_to"
    assert sql.scalar(sa.select(sa.func.count(Message.id))) == 1


def test_a_reply_to_a_message_of_another_conversation_is_refused(client, make, ada, sql, chat):
    elsewhere = make.message(ada, make.private(ada, make.user("Cara")), "hidden")
    response = reply(client, chat, elsewhere)
    assert response.status_code == 422
    assert "this conversation" in response.get_json()["error"]
    assert sql.scalar(sa.select(sa.func.count(Message.id))) == 1


def test_a_reply_to_a_deleted_message_is_refused(client, login_client, bob, chat, question):
    login_client(bob).delete(f"/messages/{question}", headers=JSON)
    response = reply(client, chat, question)
    assert response.status_code == 422
    assert "deleted" in response.get_json()["error"]


def test_outsiders_get_404_whatever_the_reply(login_client, make, chat, question):
    eve = login_client(make.user("Eve"))
    for bad in (question, "abc"):
        assert reply(eve, chat, bad).status_code == 404


def test_a_deleted_original_shows_as_deleted_in_the_reply(
    client, login_client, bob, chat, question
):
    sent = reply(client, chat, question).get_json()
    login_client(bob).delete(f"/messages/{question}", headers=JSON)
    shown = client.get(f"/messages/{sent['id']}", headers=JSON).get_json()["reply_to"]
    assert shown == {"id": question, "author_name": "Bob", "excerpt": "", "deleted": True}
    html = text(client.get(f"/conversations/{chat}"))
    assert '<span class="quote-text">Original message deleted</span>' in html
    assert "Dinner on Friday" not in html


def test_reply_without_javascript_from_the_menu_link(client, sql, chat, question):
    page = f"/conversations/{chat}?reply_to={question}"
    html = text(client.get(page))
    assert f'<input type="hidden" name="reply_to" value="{question}">' in html
    assert "Replying to <strong>Bob</strong>: Dinner on Friday?" in html
    # What the form sends: its hidden field with the text.
    form = {"body": "Yes please", "reply_to": str(question)}
    response = client.submit(page, f"/conversations/{chat}/messages", form)
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == f"/conversations/{chat}"
    stored = sql.rows(sa.select(Message.body, Message.reply_to_id).order_by(Message.id))
    assert stored[-1] == ("Yes please", question)
    # The composer after it is a plain one again.
    assert 'name="reply_to"' not in text(client.get(f"/conversations/{chat}"))


def test_reply_with_htmx_fills_the_composers_reply_slot(client, chat, question):
    headers = {**HTMX, "HX-Target": "reply-slot"}
    html = text(client.get(f"/conversations/{chat}?reply_to={question}", headers=headers))
    assert html.lstrip().startswith(f'<input type="hidden" name="reply_to" value="{question}">')
    assert "Replying to" in html and "<form" not in html  # the text being typed stays
    assert text(client.get(f"/conversations/{chat}", headers=headers)).strip() == ""
    # A number that is not a message here answers nothing.
    assert text(client.get(f"/conversations/{chat}?reply_to=999", headers=headers)).strip() == ""


def test_a_refused_reply_comes_back_still_answering_the_message(client, sql, chat, question):
    response = client.post(
        f"/conversations/{chat}/messages", data={"body": " ", "reply_to": question}, headers=HTMX
    )
    assert response.status_code == 422
    assert f'name="reply_to" value="{question}"' in text(response)
    assert sql.scalar(sa.select(sa.func.count(Message.id))) == 1


def test_a_reply_refused_without_javascript_comes_back_still_answering(client, sql, chat, question):
    page = f"/conversations/{chat}?reply_to={question}"
    response = client.submit(
        page, f"/conversations/{chat}/messages", {"body": " ", "reply_to": str(question)}
    )
    assert response.status_code == 303
    html = text(client.get(response.headers["Location"]))
    assert "Write a message before sending." in html
    assert f'<input type="hidden" name="reply_to" value="{question}">' in html
    assert "Replying to <strong>Bob</strong>: Dinner on Friday?" in html
    assert sql.scalar(sa.select(sa.func.count(Message.id))) == 1


def test_the_history_opens_around_a_message(client, make, bob, chat):
    ids = [make.message(bob, chat, f"message {n}") for n in range(20)]
    target = ids[5]
    page = text(client.get(f"/conversations/{chat}?around={target}"))
    shown = [int(m) for m in re.findall(r'<li class="message[^"]*"\s+id="m(\d+)"', page)]
    assert target in shown and len(shown) == PAGE
    assert shown == sorted(shown) and shown == ids[5 - PAGE // 2 : 5 - PAGE // 2 + PAGE]
    assert "Load older messages" in page and "Back to the latest messages" in page
    assert "Newer messages" in page
    body = client.get(f"/conversations/{chat}?around={target}", headers=JSON).get_json()
    assert [m["id"] for m in body["messages"]] == shown
    assert body["has_more"] is True and body["has_newer"] is True
    # Around the newest: nothing newer, and no link to it.
    last = text(client.get(f"/conversations/{chat}?around={ids[-1]}"))
    assert "Newer messages" not in last
    for huge in ("9" * 30, "9" * 5000, str(2**31), str(2**31 - 1), "²"):
        assert client.get(f"/conversations/{chat}?around={huge}").status_code == 200
        assert client.get(f"/conversations/{chat}/messages?before={huge}").status_code == 200
        assert client.get(f"/conversations/{chat}?reply_to={huge}").status_code == 200


def test_the_reply_reaches_open_tabs_with_its_quote_and_a_deletion_updates_it(make, visit, live):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    question = make.message(bob, chat, "Dinner on Friday?")
    alice, bobby = visit(ada, live), visit(bob, live)
    tab = bobby.stream()
    sent = alice.request(
        "POST", f"/conversations/{chat}/messages", json={"body": "Yes", "reply_to": question}
    )
    assert sent.status_code == 201, sent.text
    created = wait_for(tab, lambda e: e.name == f"message-created-{chat}")
    assert f'data-jump="m{question}"' in created.data and "Dinner on Friday?" in created.data
    assert bobby.request("DELETE", f"/messages/{question}").status_code == 200
    reply_id = sent.json()["id"]
    updated = wait_for(
        tab, lambda e: e.name == f"message-updated-{chat}" and f'id="m{reply_id}"' in e.data
    )
    assert "Original message deleted" in updated.data and "Dinner" not in updated.data
    # A tab that dropped before the reply is told the same on reconnecting, and no replay
    # shows the deleted text again.
    resumed = bobby.stream(headers={"Last-Event-ID": str(int(created.id) - 1)})
    again = wait_for(
        resumed, lambda e: e.name == f"message-updated-{chat}" and f'id="m{reply_id}"' in e.data
    )
    assert "Original message deleted" in again.data
    assert not [e for e in resumed.events if "Dinner" in e.data]


def test_ids_past_what_the_database_holds_are_not_found(client, chat):
    for huge in (str(2**31), "9" * 30):
        assert client.get(f"/messages/{huge}", headers=JSON).status_code == 404
        assert client.get(f"/conversations/{huge}", headers=JSON).status_code == 404
        # No route takes it (Werkzeug says 405 for the unsafe methods), and nothing breaks.
        patched = client.patch(f"/messages/{huge}", json={"body": "x"}, headers=JSON)
        assert patched.status_code in (404, 405)
