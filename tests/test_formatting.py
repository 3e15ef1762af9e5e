"""Formatting and mentions: what a message's text looks like in the page, the htmx fragment
and the live partial (one filter, chipper/formatting.py), its plain text in the list and in
notifications, and the people it names with @."""

import re

import pytest
import sqlalchemy as sa

from chipper.formatting import find_mentions, names_of, plain_text, render
from chipper.models import Mention, User
from tests.conftest import HTMX, JSON, text
from tests.realtime_support import wait_for

# What the formatting filter makes of the text as typed


@pytest.mark.parametrize(
    "typed, shown",
    [
        ("**bold** and _italics_", "<strong>bold</strong> and <em>italics</em>"),
        ("use `git status`", "use <code>git status</code>"),
        ("~~wrong~~ right", "<s>wrong</s> right"),
        ("one\ntwo", "one<br>two"),
        ("5 * 3 = 15, 2 * 2 = 4", "5 * 3 = 15, 2 * 2 = 4"),
        ("# not a heading", "# not a heading"),
        ("<b>raw</b> & more", "&lt;b&gt;raw&lt;/b&gt; &amp; more"),
    ],
)
def test_inline_marks_stay_one_paragraph(typed, shown):
    result = render(typed)
    assert result.inline and str(result.html) == shown


def test_blocks_become_quotes_code_and_lists():
    result = render("> quoted\n\n```\nif x < 1:\n    pass\n```\n\n- one\n- two")
    assert not result.inline
    html = str(result.html)
    assert "<blockquote>\n<p>quoted</p>\n</blockquote>" in html
    assert "<pre><code>if x &lt; 1:\n    pass\n</code></pre>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html


def test_bare_addresses_become_safe_links():
    html = str(render("see https://example.com/a?b=1 or www.example.org").html)
    links = re.findall(r"<a [^>]+>", html)
    assert links == [
        '<a href="https://example.com/a?b=1" rel="noopener nofollow ugc" target="_blank">',
        '<a href="http://www.example.org" rel="noopener nofollow ugc" target="_blank">',
    ]


@pytest.mark.parametrize(
    "typed",
    [
        "[tap](javascript:alert(1))",
        "[tap](JaVaScRiPt:alert(1))",
        "<javascript:alert(1)>",
        "[tap](data:text/html,<script>alert(1)</script>)",
        "[tap](vbscript:x)",
        "[admin](/admin)",
        "[tap](file:///etc/passwd)",
    ],
)
def test_other_schemes_and_paths_never_become_links(typed):
    assert "<a " not in str(render(typed).html)


def test_only_http_https_and_mailto_links():
    html = str(render("[site](https://e.com) [mail](mailto:a@e.com) [plain](http://e.com)").html)
    assert re.findall(r'href="([^"]+)"', html) == [
        "https://e.com",
        "mailto:a@e.com",
        "http://e.com",
    ]


def test_plain_text_drops_the_marks():
    typed = "**Lunch** at _noon_?\n> bring `cash`\n\nhttps://e.com"
    assert plain_text(typed) == "Lunch at noon?\nbring cash\nhttps://e.com"
    assert plain_text("just text") == "just text"


def test_a_first_name_names_someone_when_no_one_else_shares_it():
    names = names_of({1: "Ada Lovelace", 2: "Alan Turing", 3: "Alan Kay", 4: "Grace"})
    assert names == {"ada lovelace": 1, "alan turing": 2, "alan kay": 3, "grace": 4, "ada": 1}
    assert list(find_mentions("@Ada and @Alan, @Alan Kay", names)) == [1, 3]


def test_mentions_are_found_longest_name_first_and_not_in_addresses():
    people = {"ann": 1, "ann lee": 2, "bob": 3}
    assert list(find_mentions("@Ann Lee and @bob, @ANN!", people)) == [2, 3, 1]
    assert list(find_mentions("mail ann@example.com or @annie", people)) == []
    assert list(find_mentions("@bob @bob", people)) == [3]


# In the app


@pytest.fixture
def group(make, ada, bob, cara) -> int:
    return make.group(ada, [bob, cara], name="Lunch club")


def send(client, conversation_id: int, body: str, headers=JSON):
    return client.post(
        f"/conversations/{conversation_id}/messages", data={"body": body}, headers=headers
    )


def test_the_page_the_fragment_and_json_show_the_same_formatting(client, group):
    sent = send(client, group, "**soup** today")
    assert sent.get_json()["body"] == "**soup** today"  # stored as typed
    fragment = text(send(client, group, "**bread** too", headers=HTMX))
    assert '<p class="body"><strong>bread</strong> too</p>' in fragment
    page = text(client.get(f"/conversations/{group}"))
    assert '<p class="body"><strong>soup</strong> today</p>' in page
    quoted = text(send(client, group, "> a quote\n\nand an answer", headers=HTMX))
    assert '<div class="body formatted"><blockquote>' in quoted


def test_the_conversation_list_shows_the_text_without_marks(client, group):
    send(client, group, "**soup** _today_")
    summary = client.get("/conversations", headers=JSON).get_json()["conversations"][0]
    assert summary["last_message"]["body"] == "**soup** _today_"
    assert "You: soup today" in text(client.get("/conversations"))


def test_a_mention_is_stored_and_shown_strongly_for_the_one_named(
    client, login_client, sql, group, bob, cara
):
    sent = send(client, group, "@Bob can you bring @cara's bowl? cc @nobody").get_json()
    assert sent["mentions"] == [bob, cara]
    rows = sql.rows(sa.select(Mention.user_id).where(Mention.message_id == sent["id"]))
    assert sorted(r[0] for r in rows) == sorted([bob, cara])
    bobs_page = text(login_client(bob).get(f"/conversations/{group}"))
    assert f'<span class="mention you" data-user-id="{bob}">@Bob</span>' in bobs_page
    assert f'<span class="mention" data-user-id="{cara}">@cara</span>' in bobs_page
    assert "@nobody" in bobs_page and 'data-user-id="0"' not in bobs_page


def test_a_mention_still_shows_after_the_person_is_renamed(
    client, login_client, sql, group, bob, cara
):
    sent = send(client, group, "@Bob and @Cara Jones, lunch?").get_json()
    rows = sql.rows(
        sa.select(Mention.user_id, Mention.name).where(Mention.message_id == sent["id"])
    )
    assert sorted(rows) == sorted([(bob, "bob"), (cara, "cara")])
    sql.write(sa.update(User).where(User.id == bob).values(name="Robert"))
    bobs_page = text(login_client(bob).get(f"/conversations/{group}"))
    assert f'<span class="mention you" data-user-id="{bob}">@Bob</span>' in bobs_page
    # Named by the new name in a new message, too.
    send(client, group, "@Robert ?")
    bobs_page = text(login_client(bob).get(f"/conversations/{group}"))
    assert f'<span class="mention you" data-user-id="{bob}">@Robert</span>' in bobs_page


def test_someone_outside_the_conversation_is_not_mentioned(client, make, group):
    make.user("Dan")
    assert send(client, group, "@Dan hello").get_json()["mentions"] == []


def test_the_list_shows_at_for_an_unread_mention_until_read(client, login_client, group, bob):
    bobs = login_client(bob)
    send(client, group, "hello all")
    assert "mention-badge" not in text(bobs.get("/conversations"))
    assert (
        bobs.get("/conversations", headers=JSON).get_json()["conversations"][0]["mentioned"]
        is False
    )
    send(client, group, "@Bob over to you")
    assert "mention-badge" in text(bobs.get("/conversations"))
    assert (
        bobs.get("/conversations", headers=JSON).get_json()["conversations"][0]["mentioned"] is True
    )
    assert "mention-badge" not in text(client.get("/conversations"))  # the sender's own
    bobs.post(f"/conversations/{group}/read", headers=JSON)
    assert "mention-badge" not in text(bobs.get("/conversations"))


def test_an_edit_updates_the_mentions(client, group, bob, cara):
    sent = send(client, group, "@Bob hi").get_json()
    edited = client.patch(f"/messages/{sent['id']}", json={"body": "@Cara hi"}, headers=JSON)
    assert edited.get_json()["mentions"] == [cara]
    edited = client.patch(f"/messages/{sent['id']}", json={"body": "@Cara @Bob"}, headers=JSON)
    assert edited.get_json()["mentions"] == [cara, bob]


def test_deleting_a_message_removes_its_mentions(client, sql, group):
    sent = send(client, group, "@Bob hi").get_json()
    client.delete(f"/messages/{sent['id']}", headers=JSON)
    assert sql.rows(sa.select(Mention.user_id).where(Mention.message_id == sent["id"])) == []


def test_a_formatted_mention_reaches_every_tab_viewer_neutral(make, visit, live):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    alice, bobby = visit(ada, live), visit(bob, live)
    tab = bobby.stream()
    wait_for(tab, lambda e: e.name == "hello")
    sent = alice.send(chat, "**@Bob** see https://example.com")
    frame = wait_for(tab, lambda e: e.name == f"message-created-{chat}")
    assert f'<strong><span class="mention" data-user-id="{bob}">@Bob</span></strong>' in frame.data
    assert 'rel="noopener nofollow ugc"' in frame.data
    # Replayed after a dropped stream, the same.
    resumed = bobby.stream(headers={"Last-Event-ID": str(int(frame.id) - 1)})
    again = wait_for(resumed, lambda e: e.name == f"message-created-{chat}")
    assert again.data == frame.data and sent["mentions"] == [bob]
