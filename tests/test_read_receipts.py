"""Read receipts: "Seen" under your latest message once the other person has read it ("Seen
by N" in a group), live over the stream, and a setting that turns them off both ways."""

import pytest

from tests.conftest import HTMX, JSON, text
from tests.realtime_support import wait_for


def seen(client, conversation_id: int) -> dict:
    return client.get(f"/conversations/{conversation_id}/seen", headers=JSON).get_json()


def read(client, conversation_id: int) -> None:
    assert client.post(f"/conversations/{conversation_id}/read", headers=JSON).status_code == 204


@pytest.fixture
def chat(make, ada, bob) -> int:
    return make.private(ada, bob)


def test_seen_appears_once_the_other_has_read_your_latest(client, login_client, make, chat, bob):
    sent = client.post(f"/conversations/{chat}/messages", data={"body": "hi"}, headers=JSON)
    message_id = sent.get_json()["id"]
    assert seen(client, chat) == {"message_id": message_id, "seen_by": []}
    page = text(client.get(f"/conversations/{chat}"))
    assert '<p id="seen"' in page and ">Seen<" not in page
    read(login_client(bob), chat)
    assert seen(client, chat) == {"message_id": message_id, "seen_by": [bob]}
    assert '<span title="Seen by Bob">Seen</span>' in text(client.get(f"/conversations/{chat}"))
    fragment = text(client.get(f"/conversations/{chat}/seen", headers=HTMX))
    assert fragment == '<span title="Seen by Bob">Seen</span>'
    # Bob answers: the latest message is his, and Ada's line goes.
    make.message(bob, chat, "hello")
    assert seen(client, chat) == {"message_id": None, "seen_by": []}


def test_in_a_group_seen_by_counts_and_names_the_readers(
    client, login_client, make, ada, bob, cara
):
    group = make.group(ada, [bob, cara], "Lunch club")
    client.post(f"/conversations/{group}/messages", data={"body": "soup?"}, headers=JSON)
    read(login_client(bob), group)
    read(login_client(cara), group)
    assert sorted(seen(client, group)["seen_by"]) == sorted([bob, cara])
    page = text(client.get(f"/conversations/{group}"))
    assert (
        '<span title="Bob, Cara">Seen by 2</span><span class="seen-names">: Bob, Cara</span>'
        in (page)
    )


def test_turned_off_others_do_not_see_you_read_and_you_do_not_see_them(
    client, login_client, make, chat, bob
):
    bobs = login_client(bob)
    response = bobs.post("/account/read-receipts", json={"read_receipts": False}, headers=JSON)
    assert response.get_json() == {"read_receipts": False}
    client.post(f"/conversations/{chat}/messages", data={"body": "hi"}, headers=JSON)
    read(bobs, chat)
    assert seen(client, chat)["seen_by"] == []  # Ada does not see that Bob read
    bobs.post(f"/conversations/{chat}/messages", data={"body": "yo"}, headers=JSON)
    read(client, chat)
    assert seen(bobs, chat) == {"message_id": None, "seen_by": []}  # nor Bob hers
    # On again: both ways at once.
    bobs.post("/account/read-receipts", json={"read_receipts": True}, headers=JSON)
    assert seen(bobs, chat)["seen_by"] != []


def test_the_setting_is_a_plain_form_on_the_account_page(client, ada):
    page = text(client.get("/account"))
    assert 'name="read_receipts" checked' in page and "Send read receipts" in page
    response = client.submit("/account", "/account/read-receipts", {})  # unticked
    assert response.status_code == 200 and "Read receipts off." in text(response)
    assert client.get("/account", headers=JSON).get_json()["read_receipts"] is False
    assert 'name="read_receipts" >' in text(client.get("/account"))


def test_an_outsider_gets_404(login_client, make, chat):
    stranger = login_client(make.user("Stranger"))
    assert stranger.get(f"/conversations/{chat}/seen", headers=JSON).status_code == 404


def test_seen_reaches_the_writer_live_and_after_a_dropped_stream(make, visit, live):
    ada, bob, cara = make.user("Ada"), make.user("Bob"), make.user("Cara")
    chat = make.private(ada, bob)
    alice, bobby = visit(ada, live), visit(bob, live)
    tab = alice.stream()
    wait_for(tab, lambda e: e.name == "hello")
    alice.send(chat, "are you there?")
    assert bobby.request("POST", f"/conversations/{chat}/read").status_code == 204
    frame = wait_for(tab, lambda e: e.name == f"conversation-read-{chat}")
    assert frame.id is not None
    assert alice.request("GET", f"/conversations/{chat}/seen").json()["seen_by"] == [bob]
    resumed = alice.stream(headers={"Last-Event-ID": str(int(frame.id) - 1)})
    assert wait_for(resumed, lambda e: e.name == f"conversation-read-{chat}").id == frame.id
    # Cara, outside the chat, hears nothing of it.
    carol = visit(cara, live)
    side = make.private(ada, cara)
    cara_tab = carol.stream()
    wait_for(cara_tab, lambda e: e.name == "hello")
    sync = alice.send(side, "sync")["id"]
    wait_for(cara_tab, lambda e: f'id="m{sync}"' in (e.data or ""))
    assert not [e for e in cara_tab.events if e.name.startswith("conversation-read")]
