"""Conversations: the list, starting one, the conversation page, renaming and membership."""

import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from chipper.extensions import db
from chipper.models import Conversation, Message, Participant, utcnow
from chipper.services.conversations import Membership
from tests.conftest import HTMX, JSON, as_json, text, without_tokens

CONVERSATION_KEYS = {"id", "type", "name", "participants", "last_message", "unread_count"}


def row_order(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'id="conversation-(\d+)"', html)]


def member_ids(sql, conversation_id: int) -> set[int]:
    return set(
        sql.scalars(
            sa.select(Participant.user_id).where(Participant.conversation_id == conversation_id)
        )
    )


def conversation_count(sql) -> int:
    return sql.scalar(sa.select(sa.func.count(Conversation.id)))


# The list


def test_empty_list_invites_to_start_one(client, ada):
    response = client.get("/conversations")
    assert response.status_code == 200
    assert "No conversations yet" in text(response)


def test_list_page_shows_titles_previews_and_times(client, make, ada, bob, cara):
    private = make.private(ada, bob)
    group = make.group(ada, [bob, cara], name="Book club")
    quiet = make.group(bob, [ada], name="Quiet corner")
    make.message(bob, private, "See you at <noon> & later")
    make.message(ada, group, "I'll bring the cake")
    html = text(client.get("/conversations"))
    assert "<html" in html
    assert row_order(html) == [group, private, quiet]
    rows = dict(zip(row_order(html), re.split(r'id="conversation-\d+"', html)[1:], strict=True))
    assert f'<span class="row-title" data-user-name="{bob}">Bob</span>' in rows[private]
    assert "See you at &lt;noon&gt; &amp; later" in rows[private]
    assert '<span class="row-title">Book club</span>' in rows[group]
    assert '<span class="tag">Group</span>' in rows[group]
    assert '<span class="tag">Group</span>' not in rows[private]
    assert "You: I&#39;ll bring the cake" in rows[group]
    assert "No messages yet" in rows[quiet]
    assert re.search(r'<time class="row-time" datetime="[^"]+Z">\d\d:\d\d</time>', rows[group])


def test_list_fragment_is_only_the_rows(client, make, ada, bob):
    conversation = make.private(ada, bob)
    response = client.get("/conversations", headers=HTMX)
    html = text(response)
    assert response.status_code == 200
    assert "<html" not in html
    assert 'id="conversation-list"' not in html
    assert html.strip().startswith("<li")
    assert row_order(html) == [conversation]
    assert "HX-Request" in response.headers["Vary"]


def test_list_json(client, make, ada, bob, cara):
    private = make.private(ada, bob)
    group = make.group(ada, [bob, cara], name="Book club")
    message = make.message(bob, private, "hi Ada")
    response = client.get("/conversations", headers=JSON)
    assert response.status_code == 200
    items = {c["id"]: c for c in response.get_json()["conversations"]}
    assert list(items) == [private, group]
    for item in items.values():
        assert item.keys() >= CONVERSATION_KEYS
    assert items[private]["type"] == "private"
    assert items[private]["name"] is None
    assert {p["name"] for p in items[private]["participants"]} == {"Ada", "Bob"}
    assert items[private]["last_message"]["id"] == message
    assert items[private]["last_message"]["body"] == "hi Ada"
    assert items[private]["unread_count"] == 1
    assert items[group]["type"] == "group"
    assert items[group]["name"] == "Book club"
    assert items[group]["last_message"] is None
    assert items[group]["unread_count"] == 0


def test_a_new_message_moves_its_conversation_to_the_top(client, make, ada, bob, cara):
    first = make.private(ada, bob)
    second = make.private(ada, cara)
    third = make.group(bob, [ada, cara])
    assert row_order(text(client.get("/conversations"))) == [third, second, first]
    make.message(bob, first, "bump")
    assert row_order(text(client.get("/conversations"))) == [first, third, second]
    make.message(ada, second, "my turn")
    ids = [c["id"] for c in client.get("/conversations", headers=JSON).get_json()["conversations"]]
    assert ids == [second, first, third]


def unread(client) -> dict[int, int]:
    response = client.get("/conversations", headers=JSON)
    return {c["id"]: c["unread_count"] for c in response.get_json()["conversations"]}


def test_unread_counts_follow_what_you_have_read(client, make, ada, bob, cara):
    private = make.private(ada, bob)
    group = make.group(bob, [ada, cara])
    make.message(bob, private, "one")
    make.message(bob, private, "two")
    make.message(cara, group, "three")
    assert unread(client) == {private: 2, group: 1}
    assert client.get(f"/conversations/{private}").status_code == 200
    assert unread(client) == {private: 0, group: 1}
    make.message(bob, private, "four")
    assert unread(client) == {private: 1, group: 1}


def test_your_own_messages_are_never_unread(client, make, ada, bob):
    private = make.private(ada, bob)
    make.message(ada, private, "hello?")
    make.message(ada, private, "anyone?")
    assert unread(client) == {private: 0}


def test_deleted_messages_are_not_unread(client, make, login_client, ada, bob):
    private = make.private(ada, bob)
    make.message(bob, private, "kept")
    regret = make.message(bob, private, "regret")
    assert unread(client) == {private: 2}
    assert login_client(bob).delete(f"/messages/{regret}", headers=JSON).status_code == 200
    assert unread(client) == {private: 1}
    row = text(client.get("/conversations"))
    assert "Message deleted" in row


def test_unread_rows_and_the_nav_badge(client, make, ada, bob, cara):
    private = make.private(ada, bob)
    group = make.group(bob, [ada, cara])
    html = text(client.get("/conversations"))
    assert nav_badge(html) == ""
    make.message(bob, private, "one")
    make.message(bob, group, "two")
    make.message(cara, group, "three")
    html = text(client.get("/conversations"))
    assert nav_badge(html) == "3 unread"
    assert html.count('class="conversation-row unread"') == 2
    client.get(f"/conversations/{group}")
    html = text(client.get(f"/conversations/{private}"))
    assert nav_badge(html) == ""


def nav_badge(html: str) -> str:
    """The text of the navigation's unread badge ("" when there is none)."""
    slot = re.search(r'<span id="nav-unread"[^>]*>(.*?)</span>\s*</a>', html, re.S).group(1)
    return re.sub(r"<[^>]+>", "", slot).strip()


def test_list_query_count_does_not_grow_with_conversations(app, client, make, ada):
    """Twelve conversations cost the same number of SQL statements as two (no N+1)."""
    others = [make.user(f"Friend {i}") for i in range(6)]

    def add_conversations(people):
        for person in people:
            conversation = make.private(ada, person)
            make.message(person, conversation, "hi")
            group = make.group(person, [ada, others[0]], name=f"Group of {person}")
            make.message(person, group, "welcome")
            make.message(ada, group, "thanks")

    add_conversations(others[:1])
    small = {rep: count_statements(app, client, headers) for rep, headers in REPRESENTATIONS}
    add_conversations(others[1:])
    assert len(client.get("/conversations", headers=JSON).get_json()["conversations"]) == 12
    large = {rep: count_statements(app, client, headers) for rep, headers in REPRESENTATIONS}
    assert large == small


REPRESENTATIONS = [("page", None), ("fragment", HTMX), ("json", JSON)]


def count_statements(app, client, headers) -> int:
    client.get("/conversations", headers=headers)  # warm up: same connection state both times
    with app.app_context():
        engine = db.engine
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get("/conversations", headers=headers).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return len(statements)


# Starting a conversation


def test_new_page_lists_people_but_not_you(client, ada, bob, cara):
    response = client.get("/conversations/new")
    assert response.status_code == 200
    html = text(response)
    assert "<html" in html
    assert f'name="user_ids" value="{bob}"' in html
    assert f'name="user_ids" value="{cara}"' in html
    assert f'name="user_ids" value="{ada}"' not in html
    assert 'name="type" value="private"' in html and 'name="type" value="group"' in html


@pytest.mark.parametrize("headers", [None, HTMX], ids=["page", "fragment"])
def test_new_page_search(client, make, ada, bob, cara, headers):
    make.user("Robert")
    html = text(client.get("/conversations/new?q=BO", headers=headers))
    assert f'value="{bob}"' in html
    assert "Robert" not in html
    assert "Cara" not in html
    if headers:
        assert "<html" not in html
        assert html.strip().startswith("<li")
    else:
        assert 'value="BO"' in html


def test_searching_without_javascript_keeps_every_choice(client, make, ada, bob, cara):
    """The form's Search button posts the whole form back: the kind, the name and the people
    already ticked stay while another search finds more."""
    dora = make.user("Dora")
    response = client.submit(
        "/conversations/new",
        "/conversations/new",
        {"type": "group", "name": "Garden <club>", "user_ids": [bob], "q": "dor"},
    )
    assert response.status_code == 200
    html = text(response)
    assert re.search(r'name="type" value="group"\s+checked', html)
    assert 'value="Garden &lt;club&gt;"' in html
    assert f'name="user_ids" value="{bob}" checked' in html
    assert f'name="user_ids" value="{dora}">' in html
    assert f'value="{cara}"' not in html  # not what was searched for
    assert 'id="q" name="q" type="search" value="dor"' in html


@pytest.mark.parametrize("q", ["zzz", "%", "_"])
def test_new_page_search_without_matches(client, ada, bob, q):
    html = text(client.get("/conversations/new", query_string={"q": q}, headers=HTMX))
    assert f"Nobody matches “{q}”" in html
    assert "Bob" not in html


def test_new_page_search_keeps_people_already_ticked(client, ada, bob, cara):
    html = text(client.get(f"/conversations/new?q=cara&user_ids={bob}", headers=HTMX))
    assert f'value="{bob}" checked' in html
    assert f'value="{cara}">' in html


def test_new_json_lists_people(client, ada, bob, cara):
    response = client.get("/conversations/new?q=car", headers=JSON)
    assert response.get_json() == {"users": [{"id": cara, "name": "Cara", "avatar": None}]}


def test_start_private_redirects_to_it(client, sql, ada, bob):
    response = client.submit(
        "/conversations/new", "/conversations", {"type": "private", "user_ids": bob}
    )
    assert response.status_code == 303
    conversation = sql.scalar(sa.select(Conversation.id))
    assert response.headers["Location"] == f"/conversations/{conversation}"
    assert member_ids(sql, conversation) == {ada, bob}
    page = text(client.get(response.headers["Location"]))
    assert '<h1 id="conversation-title">Bob</h1>' in page


def test_the_same_pair_always_gets_the_same_private_conversation(
    client, login_client, sql, ada, bob
):
    first = client.post("/conversations", data={"type": "private", "user_ids": bob})
    again = client.post("/conversations", data={"type": "private", "user_ids": bob})
    other_way = login_client(bob).post("/conversations", data={"user_ids": ada})
    assert first.status_code == again.status_code == other_way.status_code == 303
    assert first.headers["Location"] == again.headers["Location"] == other_way.headers["Location"]
    assert conversation_count(sql) == 1


def test_start_private_json_201_then_200(client, login_client, ada, bob):
    created = client.post(
        "/conversations", json={"type": "private", "user_ids": [bob]}, headers=JSON
    )
    assert created.status_code == 201
    body = created.get_json()
    assert body.keys() >= CONVERSATION_KEYS
    assert body["type"] == "private"
    assert {p["id"] for p in body["participants"]} == {ada, bob}
    existing = login_client(bob).post("/conversations", json={"user_ids": [ada]}, headers=JSON)
    assert existing.status_code == 200
    assert existing.get_json()["id"] == body["id"]


BAD_PRIVATE = {
    "yourself": (["ada"], "Choose someone other than yourself."),
    "two people": (["bob", "cara"], "Choose exactly one person for a private message."),
    "nobody": ([], "Choose exactly one person for a private message."),
    "unknown user": (["999999"], "Some of the chosen people do not exist."),
    "not a number": (["bob's id"], "Choose people from the list."),
}


@pytest.mark.parametrize(("chosen", "message"), BAD_PRIVATE.values(), ids=BAD_PRIVATE.keys())
@pytest.mark.parametrize("as_json", [False, True], ids=["page", "json"])
def test_bad_private_conversation_is_refused(client, sql, ada, bob, cara, chosen, message, as_json):
    people = {"ada": str(ada), "bob": str(bob), "cara": str(cara)}
    user_ids = [people.get(name, name) for name in chosen]
    if as_json:
        response = client.post(
            "/conversations", json={"type": "private", "user_ids": user_ids}, headers=JSON
        )
        assert response.status_code == 422
        assert response.get_json() == {"error": message, "field": "user_ids"}
    else:
        response = client.post("/conversations", data={"type": "private", "user_ids": user_ids})
        assert response.status_code == 422
        assert message in text(response).replace("&#39;", "'")
    assert conversation_count(sql) == 0


@pytest.mark.parametrize("user_id", [True, 1.5, "1.5", None, {"id": 1}], ids=repr)
def test_json_user_ids_must_be_whole_numbers(client, sql, ada, bob, user_id):
    response = client.post(
        "/conversations", json={"type": "private", "user_ids": [user_id]}, headers=JSON
    )
    assert response.status_code == 422
    assert response.get_json() == {"error": "Choose people from the list.", "field": "user_ids"}
    assert conversation_count(sql) == 0


def test_json_null_group_name_is_refused(client, sql, ada, bob):
    response = client.post(
        "/conversations", json={"type": "group", "name": None, "user_ids": [bob]}, headers=JSON
    )
    assert response.status_code == 422
    assert response.get_json() == {"error": "Give the group a name.", "field": "name"}
    assert conversation_count(sql) == 0


def test_unknown_conversation_type_is_refused(client, sql, ada, bob):
    response = client.post(
        "/conversations", json={"type": "channel", "user_ids": [bob]}, headers=JSON
    )
    assert response.status_code == 422
    assert response.get_json()["field"] == "type"
    assert conversation_count(sql) == 0


def test_concurrent_private_starts_make_one_conversation(app, login_client, sql, ada, bob):
    """Both requests look for the pair, find nothing and insert at the same moment."""
    clients = {ada: login_client(ada), bob: login_client(bob)}
    both_inserting = threading.Barrier(2, timeout=10)

    def insert_together(session, flush_context, instances):
        if any(isinstance(obj, Conversation) for obj in session.new):
            both_inserting.wait()

    responses = {}

    def start(me, other):
        responses[me] = clients[me].post(
            "/conversations", json={"type": "private", "user_ids": [other]}, headers=JSON
        )

    threads = [threading.Thread(target=start, args=pair) for pair in ((ada, bob), (bob, ada))]
    sa.event.listen(Session, "before_flush", insert_together)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sa.event.remove(Session, "before_flush", insert_together)
    assert sorted(r.status_code for r in responses.values()) == [200, 201]
    assert responses[ada].get_json()["id"] == responses[bob].get_json()["id"]
    assert conversation_count(sql) == 1
    assert member_ids(sql, responses[ada].get_json()["id"]) == {ada, bob}


def test_start_group_redirects_and_includes_the_creator(client, sql, ada, bob, cara):
    response = client.submit(
        "/conversations/new",
        "/conversations",
        {"type": "group", "name": "  Book club ", "user_ids": [bob, cara]},
    )
    assert response.status_code == 303
    group = sql.scalar(sa.select(Conversation.id))
    assert response.headers["Location"] == f"/conversations/{group}"
    assert member_ids(sql, group) == {ada, bob, cara}
    assert sql.rows(sa.select(Conversation.name, Conversation.type, Conversation.created_by)) == [
        ("Book club", "group", ada)
    ]
    page = text(client.get(response.headers["Location"]))
    assert "3 members" in page


def test_start_group_json(client, ada, bob):
    response = client.post(
        "/conversations", json={"type": "group", "name": "Duo", "user_ids": [bob]}, headers=JSON
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["name"] == "Duo"
    assert body["created_by"] == ada
    assert {p["id"] for p in body["participants"]} == {ada, bob}


BAD_GROUPS = {
    "no name": ("", ["bob"], "name", "Give the group a name."),
    "blank name": ("   ", ["bob", "cara"], "name", "Give the group a name."),
    "long name": ("x" * 101, ["bob"], "name", "Group names are at most 100 characters."),
    "nobody": ("Team", [], "user_ids", "Choose at least one other person for the group."),
    "only you": ("Team", ["ada"], "user_ids", "Choose at least one other person for the group."),
    "unknown": ("Team", ["999999"], "user_ids", "Some of the chosen people do not exist."),
}


@pytest.mark.parametrize(
    ("name", "chosen", "field", "message"), BAD_GROUPS.values(), ids=BAD_GROUPS
)
def test_bad_group_page_keeps_the_form(client, sql, ada, bob, cara, name, chosen, field, message):
    people = {"ada": ada, "bob": bob, "cara": cara}
    user_ids = [people.get(who, who) for who in chosen]
    response = client.post(
        "/conversations", data={"type": "group", "name": name, "user_ids": user_ids}
    )
    assert response.status_code == 422
    html = text(response)
    assert message in html
    assert 'value="group" checked' in html
    assert f'id="group-name" name="name" maxlength="100" value="{name}"' in html
    for user_id in user_ids:
        if user_id in (bob, cara):
            assert f'value="{user_id}" checked' in html
    assert conversation_count(sql) == 0


@pytest.mark.parametrize(
    ("name", "chosen", "field", "message"), BAD_GROUPS.values(), ids=BAD_GROUPS
)
def test_bad_group_json(client, sql, ada, bob, cara, name, chosen, field, message):
    people = {"ada": ada, "bob": bob, "cara": cara}
    user_ids = [people.get(who, who) for who in chosen]
    response = client.post(
        "/conversations", json={"type": "group", "name": name, "user_ids": user_ids}, headers=JSON
    )
    assert response.status_code == 422
    assert response.get_json() == {"error": message, "field": field}
    assert conversation_count(sql) == 0


# The conversation page

PANE = {**HTMX, "HX-Target": "conversation-pane"}


def test_the_conversation_page_has_the_list_beside_it(client, make, ada, bob, cara):
    private = make.private(ada, bob)
    group = make.group(ada, [bob, cara], name="Book club")
    html = text(client.get(f"/conversations/{group}"))
    assert row_order(html) == [group, private]
    open_row = html.split(f'id="conversation-{group}"')[1].split("</li>")[0]
    assert 'aria-current="page"' in open_row
    assert 'aria-current="page"' not in html.split(f'id="conversation-{private}"')[1]
    assert '<h1 id="conversation-title">Book club</h1>' in html
    assert '<h2 id="list-title">Messages</h2>' in html  # the page's one h1 is its title


def test_a_conversation_opened_from_the_list_is_only_its_pane(client, make, ada, bob):
    private = make.private(ada, bob)
    make.message(bob, private, "Are you there?")
    response = client.get(f"/conversations/{private}", headers=PANE)
    html = text(response)
    assert response.status_code == 200
    assert "<html" not in html and 'id="conversation-list"' not in html
    assert html.lstrip().startswith("<title>Bob · Chipper</title>")
    assert "Are you there?" in html and 'id="composer"' in html
    assert "HX-Request" in response.headers["Vary"]
    # Opening it read it, as the page does.
    assert client.get("/conversations/unread", headers=JSON).get_json() == {"unread": 0}


def test_a_page_restored_from_history_is_whole(client, make, ada, bob):
    """htmx asks for the whole page when Back finds no copy: never a fragment then."""
    private = make.private(ada, bob)
    restore = {**PANE, "HX-History-Restore-Request": "true"}
    assert "<html" in text(client.get(f"/conversations/{private}", headers=restore))
    assert "<html" in text(client.get("/conversations", headers=restore))


def test_the_lists_live_refresh_marks_the_open_conversation(client, make, ada, bob, cara):
    private = make.private(ada, bob)
    group = make.group(ada, [bob, cara], name="Book club")
    for current in (
        f"/conversations/{group}",
        f"/conversations/{group}#m12",
        f"/conversations/{group}/details?x=1",
    ):
        asking = {**HTMX, "HX-Current-URL": f"http://localhost{current}"}
        html = text(client.get("/conversations", headers=asking))
        marked = [
            int(i) for i in re.findall(r'id="conversation-(\d+)">\s*<a[^>]*aria-current', html)
        ]
        assert marked == [group], current
    html = text(client.get("/conversations", headers=HTMX))
    assert "aria-current" not in html and row_order(html) == [group, private]


def test_details_page_shows_members_and_the_group_forms(client, make, ada, bob, cara):
    group = make.group(ada, [bob], name="Book club")
    html = text(client.get(f"/conversations/{group}/details"))
    assert "<html" in html and row_order(html) == [group]
    assert '<h1 id="details-title">Book club</h1>' in html
    assert f'data-user-name="{bob}">Bob</a>' in html and "2 members" in html
    for control in ("Rename", "Add to group", "Leave group", "Mute conversation"):
        assert control in html
    assert f'name="user_ids" value="{cara}"' in html
    fragment = text(
        client.get(f"/conversations/{group}/details", headers={**HTMX, "HX-Target": "details"})
    )
    assert fragment.lstrip().startswith('<div id="details"') and "<html" not in fragment
    data = client.get(f"/conversations/{group}/details", headers=JSON).get_json()
    assert {u["name"] for u in data["participants"]} == {"Ada", "Bob"}


def test_private_details_have_no_group_forms(client, make, ada, bob):
    private = make.private(ada, bob)
    html = text(client.get(f"/conversations/{private}/details"))
    assert "Mute conversation" in html and f'data-user-name="{bob}">Bob</a>' in html
    for control in ("Rename", "Add to group", "Leave group"):
        assert control not in html


def test_a_refused_rename_without_javascript_comes_back_on_the_details_page(client, group):
    page = f"/conversations/{group}/details"
    response = client.submit(page, f"/conversations/{group}", {"_method": "PATCH", "name": " "})
    assert response.status_code == 422
    html = text(response)
    assert '<h1 id="details-title">Book club</h1>' in html
    assert 'id="rename-error"' in html and "Give the group a name." in html


def send_many(app, user_id: int, conversation_id: int, count: int) -> list[int]:
    """Messages "m-001", "m-002", ... through the service verb, in one app context."""
    from chipper.models import User
    from chipper.services import conversations, messages

    with app.app_context():
        user = db.session.get(User, user_id)
        conversation = conversations.conversation_for(user, conversation_id)
        return [
            messages.send_message(user, Membership.of(conversation), f"m-{n:03}").id
            for n in range(1, count + 1)
        ]


def bodies(html: str) -> list[str]:
    return re.findall(r'<p class="body">(m-\d{3})</p>', html)


def test_show_page_has_the_latest_50_messages(app, client, make, ada, bob):
    conversation = make.private(ada, bob)
    ids = send_many(app, bob, conversation, 55)
    response = client.get(f"/conversations/{conversation}")
    assert response.status_code == 200
    html = text(response)
    assert bodies(html) == [f"m-{n:03}" for n in range(6, 56)]
    assert "Load older messages" in html
    assert f'href="/conversations/{conversation}/messages?before={ids[5]}"' in html


def test_show_page_without_older_messages_has_no_load_link(client, make, ada, bob):
    conversation = make.private(ada, bob)
    make.message(bob, conversation, "only one")
    html = text(client.get(f"/conversations/{conversation}"))
    assert "only one" in html
    assert "Load older messages" not in html


def test_show_page_of_a_new_conversation_says_hello(client, make, ada, bob):
    html = text(client.get(f"/conversations/{make.private(ada, bob)}"))
    assert "No messages yet. Say hello!" in html
    assert 'id="composer"' in html


@pytest.fixture
def paged(app, make, ada, bob):
    """A conversation of 7 messages shown 3 at a time: (conversation id, message ids)."""
    app.config["MESSAGES_PER_PAGE"] = 3
    conversation = make.private(ada, bob)
    return conversation, send_many(app, bob, conversation, 7)


def test_older_messages_page(client, paged):
    conversation, ids = paged
    response = client.get(f"/conversations/{conversation}/messages?before={ids[4]}")
    assert response.status_code == 200
    html = text(response)
    assert "<html" in html
    assert bodies(html) == ["m-002", "m-003", "m-004"]
    assert f"before={ids[1]}" in html
    assert "Back to the latest messages" in html


@pytest.mark.parametrize(
    ("before", "expected", "more"),
    [(4, ["m-002", "m-003", "m-004"], True), (3, ["m-001", "m-002", "m-003"], False)],
    ids=["more remain", "the oldest"],
)
def test_older_messages_fragment(client, paged, before, expected, more):
    conversation, ids = paged
    response = client.get(
        f"/conversations/{conversation}/messages?before={ids[before]}", headers=HTMX
    )
    assert response.status_code == 200
    html = text(response)
    assert "<html" not in html
    assert 'id="composer"' not in html
    assert bodies(html) == expected
    assert ("Load older messages" in html) is more
    if more:
        older = re.search(r'hx-get="([^"]+)"', html).group(1)
        assert older == f"/conversations/{conversation}/messages?before={ids[1]}"


def test_older_messages_json_walks_back_to_the_start(client, paged):
    conversation, ids = paged
    seen, before, pages = [], None, 0
    while True:
        query = {"before": before} if before else {}
        response = client.get(
            f"/conversations/{conversation}/messages", query_string=query, headers=JSON
        )
        body = response.get_json()
        assert {"conversation", "messages", "has_more"} <= body.keys()
        page_ids = [m["id"] for m in body["messages"]]
        assert page_ids == sorted(page_ids)
        seen = page_ids + seen
        pages += 1
        if not body["has_more"]:
            break
        before = page_ids[0]
    assert seen == ids
    assert pages == 3


def test_day_separators_and_author_and_time(app, client, make, sql, ada, bob):
    conversation = make.private(ada, bob)
    old = make.message(bob, conversation, "from last week")
    yesterday = make.message(ada, conversation, "from yesterday")
    today = make.message(bob, conversation, "from today")
    now = utcnow()
    for message_id, when in ((old, now - timedelta(days=8)), (yesterday, now - timedelta(days=1))):
        sql.write(sa.update(Message).where(Message.id == message_id).values(created_at=when))
    html = text(client.get(f"/conversations/{conversation}"))
    days = re.findall(r'<li class="day"><span>([^<]+)</span></li>', html)
    week_ago = now - timedelta(days=8)
    expected = week_ago.strftime("%A %-d %B" + ("" if week_ago.year == now.year else " %Y"))
    assert days == [expected, "Yesterday", "Today"]
    created = sql.scalar(sa.select(Message.created_at).where(Message.id == today))
    message = html[html.index(f'id="m{today}"') :]
    assert re.search(
        r'<a class="author" href="/users/\d+" data-card data-user-name="\d+">Bob</a>', message[:800]
    )
    assert f">{created:%H:%M}</time>" in message[:800]


def test_show_json(client, make, ada, bob):
    conversation = make.private(ada, bob)
    make.message(bob, conversation, "hello")
    body = client.get(f"/conversations/{conversation}", headers=JSON).get_json()
    assert body["conversation"]["id"] == conversation
    assert [m["body"] for m in body["messages"]] == ["hello"]
    assert body["has_more"] is False


# Renaming


@pytest.fixture
def group(make, ada, bob) -> int:
    return make.group(ada, [bob], name="Book club")


def group_name(sql, conversation_id: int) -> str:
    return sql.scalar(sa.select(Conversation.name).where(Conversation.id == conversation_id))


def test_rename_json(client, sql, group):
    response = client.patch(
        f"/conversations/{group}", json={"name": " Reading room "}, headers=JSON
    )
    assert response.status_code == 200
    assert response.get_json()["name"] == "Reading room"
    assert group_name(sql, group) == "Reading room"


def test_control_characters_are_dropped_from_group_names(client, sql, group):
    response = client.patch(
        f"/conversations/{group}", json={"name": "Read\x00ing\nroom\x1b"}, headers=JSON
    )
    assert response.status_code == 200
    assert group_name(sql, group) == "Reading room"


def test_rename_htmx_returns_the_details(client, sql, group):
    response = client.patch(f"/conversations/{group}", data={"name": "Reading room"}, headers=HTMX)
    assert response.status_code == 200
    html = text(response)
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="details"')
    assert 'name="name" maxlength="100" required value="Reading room"' in html
    assert 'id="messages"' not in html
    assert group_name(sql, group) == "Reading room"


def test_rename_without_javascript(client, sql, group):
    page = f"/conversations/{group}"
    response = client.submit(page, page, {"_method": "PATCH", "name": "Reading room"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{page}/details"  # where the form is
    assert '<h1 id="conversation-title">Reading room</h1>' in text(client.get(page))
    assert group_name(sql, group) == "Reading room"


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
@pytest.mark.parametrize("rep", ["page", "fragment", "json"])
def test_rename_refused(client, sql, group, name, rep):
    headers = {"page": None, "fragment": HTMX, "json": JSON}[rep]
    response = client.patch(f"/conversations/{group}", data={"name": name}, headers=headers)
    assert response.status_code == 422
    message = "Group names are at most 100" if name.strip() else "Give the group a name."
    if rep == "json":
        assert message in response.get_json()["error"]
        assert response.get_json()["field"] == "name"
    else:
        html = text(response)
        assert message in html
        assert 'id="rename-error"' in html
        assert ("<html" in html) is (rep == "page")
    assert group_name(sql, group) == "Book club"


@pytest.mark.parametrize("headers", [None, JSON], ids=["page", "json"])
def test_private_conversations_cannot_be_renamed(client, make, sql, ada, bob, headers):
    private = make.private(ada, bob)
    response = client.patch(f"/conversations/{private}", data={"name": "Us"}, headers=headers)
    assert response.status_code == 403
    message = "Only group chats can be renamed."
    if headers:
        assert response.get_json() == {"error": message}
    else:
        assert message in text(response)
    assert group_name(sql, private) is None


# Adding people


def test_add_people_json(client, login_client, sql, group, ada, bob, cara):
    response = client.post(
        f"/conversations/{group}/participants", json={"user_ids": [cara]}, headers=JSON
    )
    assert response.status_code == 201
    assert {p["id"] for p in response.get_json()["participants"]} == {ada, bob, cara}
    assert member_ids(sql, group) == {ada, bob, cara}
    assert login_client(cara).get(f"/conversations/{group}").status_code == 200


def test_add_people_htmx_returns_the_details(client, sql, group, ada, bob, cara):
    response = client.post(
        f"/conversations/{group}/participants", data={"user_ids": cara}, headers=HTMX
    )
    assert response.status_code == 200
    html = text(response)
    assert "<html" not in html
    assert "3 members" in html
    assert f'data-user-name="{cara}">Cara</a>' in html
    assert member_ids(sql, group) == {ada, bob, cara}


def test_add_people_without_javascript(client, sql, group, ada, bob, cara):
    page = f"/conversations/{group}"
    response = client.submit(page, f"{page}/participants", {"user_ids": cara})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{page}/details"
    assert member_ids(sql, group) == {ada, bob, cara}


def test_adding_a_member_again_changes_nothing(client, sql, group, ada, bob, cara):
    response = client.post(
        f"/conversations/{group}/participants", json={"user_ids": [bob, ada, cara]}, headers=JSON
    )
    assert response.status_code == 201
    assert len(response.get_json()["participants"]) == 3
    rows = sql.scalars(sa.select(Participant.user_id).where(Participant.conversation_id == group))
    assert sorted(rows) == sorted([ada, bob, cara])


@pytest.mark.parametrize(
    ("user_ids", "message"),
    [
        ([], "Choose at least one person to add."),
        (["999999"], "Some of the chosen people do not exist."),
        (["abc"], "Choose people from the list."),
    ],
    ids=["nobody", "unknown", "not a number"],
)
@pytest.mark.parametrize("rep", ["page", "fragment", "json"])
def test_add_people_refused(client, sql, group, ada, bob, cara, user_ids, message, rep):
    headers = {"page": None, "fragment": HTMX, "json": JSON}[rep]
    response = client.post(
        f"/conversations/{group}/participants", data={"user_ids": user_ids}, headers=headers
    )
    assert response.status_code == 422
    if rep == "json":
        assert response.get_json() == {"error": message, "field": "user_ids"}
    else:
        assert message in text(response)
    assert member_ids(sql, group) == {ada, bob}


def test_private_conversations_take_no_new_members(client, make, sql, ada, bob, cara):
    private = make.private(ada, bob)
    response = client.post(
        f"/conversations/{private}/participants", json={"user_ids": [cara]}, headers=JSON
    )
    assert response.status_code == 403
    assert response.get_json() == {"error": "Only group chats can take new members."}
    assert member_ids(sql, private) == {ada, bob}


# Removing people and leaving


@pytest.fixture
def trio(make, ada, bob, cara) -> int:
    """A group Ada created with Bob and Cara."""
    return make.group(ada, [bob, cara], name="Trio")


@pytest.mark.parametrize("rep", ["page", "fragment", "json"])
def test_creator_removes_a_member(client, login_client, sql, trio, ada, bob, cara, rep):
    path = f"/conversations/{trio}/participants/{bob}"
    if rep == "page":
        response = client.submit(f"/conversations/{trio}", path, {"_method": "DELETE"})
        assert response.status_code == 303
        assert response.headers["Location"] == f"/conversations/{trio}/details"
    elif rep == "fragment":
        response = client.delete(path, headers=HTMX)
        assert response.status_code == 200
        assert "2 members" in text(response)
        assert f'data-user-name="{bob}">Bob</a>' not in text(response)
    else:
        response = client.delete(path, headers=JSON)
        assert response.status_code == 200
        assert {p["id"] for p in response.get_json()["participants"]} == {ada, cara}
    assert member_ids(sql, trio) == {ada, cara}
    assert login_client(bob).get(f"/conversations/{trio}").status_code == 404


@pytest.mark.parametrize("headers", [None, JSON], ids=["page", "json"])
def test_only_the_creator_removes_others(login_client, sql, trio, ada, bob, cara, headers):
    response = login_client(bob).delete(
        f"/conversations/{trio}/participants/{cara}", headers=headers
    )
    assert response.status_code == 403
    message = "Only the person who created the group can remove members."
    if headers:
        assert response.get_json() == {"error": message}
    else:
        assert message in text(response)
    assert member_ids(sql, trio) == {ada, bob, cara}


def test_removing_someone_who_is_not_a_member(client, make, sql, trio, ada, bob, cara):
    outsider = make.user("Dan")
    response = client.delete(f"/conversations/{trio}/participants/{outsider}", headers=JSON)
    assert response.status_code == 404
    assert member_ids(sql, trio) == {ada, bob, cara}


@pytest.mark.parametrize("rep", ["page", "fragment", "json"])
def test_anyone_can_leave(login_client, sql, trio, ada, bob, cara, rep):
    bobs = login_client(bob)
    path = f"/conversations/{trio}/participants/{bob}"
    if rep == "page":
        response = bobs.submit(f"/conversations/{trio}", path, {"_method": "DELETE"})
        assert response.status_code == 303
        assert response.headers["Location"] == "/conversations"
    elif rep == "fragment":
        response = bobs.delete(path, headers=HTMX)
        assert response.status_code == 200
        assert response.headers["HX-Redirect"] == "/conversations"
    else:
        response = bobs.delete(path, headers=JSON)
        assert response.status_code == 204
        assert response.get_data() == b""
    assert member_ids(sql, trio) == {ada, cara}
    assert bobs.get(f"/conversations/{trio}").status_code == 404
    assert trio not in row_order(text(bobs.get("/conversations")))


def test_the_creator_can_leave_too(client, sql, trio, ada, bob, cara):
    response = client.delete(f"/conversations/{trio}/participants/{ada}", headers=JSON)
    assert response.status_code == 204
    assert member_ids(sql, trio) == {bob, cara}


def test_nobody_leaves_a_private_conversation(client, make, sql, ada, bob):
    private = make.private(ada, bob)
    response = client.delete(f"/conversations/{private}/participants/{ada}", headers=JSON)
    assert response.status_code == 403
    assert response.get_json() == {"error": "Only group chats can be left."}
    assert member_ids(sql, private) == {ada, bob}


# Participants only


CONVERSATION_URLS = {
    "show": ("get", "/conversations/{id}", None),
    "older messages": ("get", "/conversations/{id}/messages?before=999999", None),
    "rename": ("patch", "/conversations/{id}", {"name": "Mine now"}),
    "add people": ("post", "/conversations/{id}/participants", {"user_ids": "{me}"}),
    "remove member": ("delete", "/conversations/{id}/participants/{member}", None),
    "leave": ("delete", "/conversations/{id}/participants/{me}", None),
    "send": ("post", "/conversations/{id}/messages", {"body": "let me in"}),
}


@pytest.mark.parametrize(
    ("method", "url", "data"), CONVERSATION_URLS.values(), ids=CONVERSATION_URLS
)
@pytest.mark.parametrize("headers", [None, HTMX, JSON], ids=["page", "fragment", "json"])
@pytest.mark.parametrize("kind", ["private", "group"])
def test_non_participants_get_404_everywhere(
    client, make, sql, ada, bob, cara, method, url, data, headers, kind
):
    """Ada is in neither conversation; the answer is the same as for an id that does not exist."""
    conversation = make.private(bob, cara) if kind == "private" else make.group(bob, [cara])
    before = sql.rows(sa.select(Conversation.name, Conversation.updated_at))
    fill = {"me": ada, "member": cara}
    path = url.format(id=conversation, **fill)
    data = {k: v.format(**fill) for k, v in data.items()} if data else None
    response = getattr(client, method)(path, data=data, headers=headers)
    missing = getattr(client, method)(url.format(id=999999, **fill), data=data, headers=headers)
    assert response.status_code == 404
    assert missing.status_code == 404
    assert without_tokens(text(response)) == without_tokens(text(missing))
    if headers is JSON:
        assert as_json(response) == {"error": "Conversation not found."}
    assert member_ids(sql, conversation) == {bob, cara}
    assert sql.rows(sa.select(Conversation.name, Conversation.updated_at)) == before
    assert sql.scalar(sa.select(sa.func.count(Message.id))) == 0
