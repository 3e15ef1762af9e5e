"""Sends that never double: every composer carries a fresh client key, and the same key twice
from one user is one message, answered with the first result (a double click, a retry after a
lost answer, the offline replay, a no-JS form sent twice, an API client's Idempotency-Key)."""

import io
import re

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import FileStorage

from chipper.models import Event, Message
from tests.conftest import HTMX, JSON, AuthActions, as_json, text
from tests.test_attachments import files_in, image, multipart


@pytest.fixture
def chat(make, auth):
    ada, bob = make.user("Ada"), make.user("Bob")
    auth.login(ada)
    return make.private(ada, bob)


def key_in(html: str) -> str:
    return re.search(r'name="client_key" value="([^"]+)"', html).group(1)


def bodies(sql) -> list[str]:
    return sql.scalars(sa.select(Message.body).order_by(Message.id))


def test_a_form_sent_twice_without_javascript_makes_one_message(client, chat, sql):
    key = key_in(text(client.get(f"/conversations/{chat}")))
    url = f"/conversations/{chat}/messages"
    first = client.post(url, data={"body": "Only once", "client_key": key})
    again = client.post(url, data={"body": "Only once", "client_key": key})
    assert first.status_code == again.status_code == 303
    assert first.headers["Location"] == again.headers["Location"]
    assert bodies(sql) == ["Only once"]
    # One event too: nobody's page or badge hears of it twice.
    assert (
        sql.scalar(sa.select(sa.func.count(Event.id)).where(Event.kind == "message-created")) == 1
    )


def test_every_composer_has_a_fresh_key_and_so_does_the_one_after_a_send(client, chat):
    keys = {key_in(text(client.get(f"/conversations/{chat}"))) for _ in range(3)}
    assert len(keys) == 3
    answer = client.post(
        f"/conversations/{chat}/messages",
        data={"body": "hi", "client_key": keys.pop()},
        headers=HTMX,
    )
    assert answer.status_code == 201
    assert key_in(text(answer)) not in keys


def test_the_api_takes_an_idempotency_key_header(client, chat, sql):
    url = f"/conversations/{chat}/messages"
    headers = {**JSON, "Idempotency-Key": "retry-after-timeout-1"}
    first = client.post(url, json={"body": "Are we still on?"}, headers=headers)
    again = client.post(url, json={"body": "Are we still on?"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert as_json(first) == as_json(again)
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert bodies(sql) == ["Are we still on?"]
    other = client.post(url, json={"body": "Are we still on?"}, headers=JSON)
    assert other.status_code == 201 and bodies(sql) == ["Are we still on?"] * 2


def test_a_repeated_upload_stores_its_file_once(app, client, chat, sql):
    folder = app.config["UPLOAD_FOLDER"]

    def send():
        upload = FileStorage(io.BytesIO(image("PNG")), "cat.png")
        fields = {"body": "our cat", "client_key": "upload-key-0001", "file": upload}
        return client.post(f"/conversations/{chat}/messages", headers=JSON, **multipart(fields))

    first = send()
    stored = files_in(folder)
    again = send()
    assert first.status_code == again.status_code == 201
    assert as_json(again)["attachment"] == as_json(first)["attachment"]
    assert files_in(folder) == stored
    assert bodies(sql) == ["our cat"]


def test_one_users_key_does_not_stop_another_users_message(app, client, chat, make, sql):
    client.post(
        f"/conversations/{chat}/messages", data={"body": "Ada's", "client_key": "same-key-1"}
    )
    bob = app.test_client()
    bob_id = sql.scalar(sa.text("SELECT id FROM users WHERE name = 'Bob'"))
    AuthActions(bob, make).login(bob_id)
    bob.post(f"/conversations/{chat}/messages", data={"body": "Bob's", "client_key": "same-key-1"})
    assert bodies(sql) == ["Ada's", "Bob's"]


@pytest.mark.parametrize("key", ["short", "x" * 65, "has space!", "ünïcode-key"])
def test_a_malformed_key_is_refused(client, chat, sql, key):
    response = client.post(
        f"/conversations/{chat}/messages", json={"body": "hi", "client_key": key}, headers=JSON
    )
    assert response.status_code == 422 and as_json(response)["field"] == "client_key"
    assert bodies(sql) == []


def test_a_key_used_in_another_conversation_is_a_conflict(client, chat, make, sql):
    cara = make.user("Cara")
    ada = sql.scalar(sa.text("SELECT id FROM users WHERE name = 'Ada'"))
    other = make.private(ada, cara)
    payload = {"body": "hi", "client_key": "one-key-here"}
    assert (
        client.post(f"/conversations/{chat}/messages", json=payload, headers=JSON).status_code
        == 201
    )
    elsewhere = client.post(f"/conversations/{other}/messages", json=payload, headers=JSON)
    assert elsewhere.status_code == 409
    assert bodies(sql) == ["hi"]
