"""Opening a conversation with unread messages shows "New messages" above the first of them."""

import re

import pytest

from tests.conftest import text

DIVIDER = '<li class="unread-divider" id="unread">'


@pytest.fixture
def chat(make, ada, bob) -> int:
    return make.private(ada, bob)


def order(html: str) -> list[str]:
    """The timeline's items in order: message ids, and "divider"."""
    items = re.findall(r'<li class="(unread-divider|message[^"]*)"\s+id="(m\d+|unread)"', html)
    return ["divider" if kind == "unread-divider" else ident for kind, ident in items]


def test_the_line_goes_above_the_first_message_not_yet_read(client, make, ada, bob, chat):
    seen = make.message(bob, chat, "seen")
    client.get(f"/conversations/{chat}")  # Ada reads it
    mine = make.message(ada, chat, "my own")
    first, second = make.message(bob, chat, "new one"), make.message(bob, chat, "new two")
    html = text(client.get(f"/conversations/{chat}"))
    assert order(html) == [f"m{seen}", f"m{mine}", "divider", f"m{first}", f"m{second}"]
    assert "New messages" in html
    # Opening it marked them read: the next visit has no line.
    assert DIVIDER not in text(client.get(f"/conversations/{chat}"))


def test_a_conversation_never_opened_starts_at_the_first_message_of_someone_else(
    client, make, ada, bob, chat
):
    mine = make.message(ada, chat, "hi Bob")
    theirs = make.message(bob, chat, "hi Ada")
    assert order(text(client.get(f"/conversations/{chat}"))) == [
        f"m{mine}",
        "divider",
        f"m{theirs}",
    ]


def test_no_line_for_your_own_messages_or_deleted_ones(client, login_client, make, ada, bob, chat):
    make.message(ada, chat, "only me")
    assert DIVIDER not in text(client.get(f"/conversations/{chat}"))
    gone = make.message(bob, chat, "oops")
    login_client(bob).delete(f"/messages/{gone}")
    assert DIVIDER not in text(client.get(f"/conversations/{chat}"))


def test_older_pages_and_the_history_around_a_message_have_no_line(client, make, bob, chat):
    message = make.message(bob, chat, "unread")
    assert DIVIDER not in text(client.get(f"/conversations/{chat}/messages?before={message + 1}"))
    assert DIVIDER not in text(client.get(f"/conversations/{chat}?around={message}"))
    assert DIVIDER in text(client.get(f"/conversations/{chat}"))
