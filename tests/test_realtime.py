"""Live updates over real event streams, read by an SSE client the way EventSource does.

Who is told what, and replay, are served by the test's own app on a thread (the `live`
fixture: Werkzeug's threaded server, as `flask run` serves, with the embedded hub); what
depends on gunicorn with gevent workers, on Redis or on several processes has servers of its
own (the `server` and `start_server` fixtures).

To prove that something did *not* reach a stream, a test sends a later message that does reach
it and waits for that (`sync`): a server process has one pub/sub subscription and one ordered
queue per stream, so whatever was published before has been delivered by then.
"""

import html
import io
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis
from PIL import Image

from tests.realtime_support import Comment, Server, Stream, Visitor, wait_for

# What a stream shows


def created(conversation_id: int, message_id: int | None = None):
    """The HTML frame that appends a message to the open conversation page."""

    def match(event) -> bool:
        return event.name == f"message-created-{conversation_id}" and (
            message_id is None or f'id="m{message_id}"' in event.data
        )

    return match


def named(name: str, data: str | None = None):
    return lambda event: event.name == name and (data is None or event.data == data)


def json_event(name: str, /, **fields):
    """A frame of a ?format=json stream whose data has these fields."""

    def match(event) -> bool:
        return event.name == name and fields.items() <= event.json().items()

    return match


def frames_of(stream: Stream, event_id: str) -> list[str]:
    """Names of the frames one stored event became on this stream, in order."""
    return [e.name for e in stream.events if e.id == event_id]


def message_ids(stream: Stream, conversation_id: int) -> list[int]:
    """The messages appended to that conversation's page, in order (duplicates kept)."""
    out = []
    for event in stream.events:
        if created(conversation_id)(event):
            out.append(int(event.data.split('id="m', 1)[1].split('"', 1)[0]))
    return out


def stored_ids(stream: Stream) -> set[str]:
    return {e.id for e in stream.events if e.id is not None}


def sync(sender: Visitor, conversation_id: int, *streams: Stream) -> str:
    """Sends a message and waits until it reached every stream (HTML or JSON); returns its
    event id on the last of them (each user numbers their events on their own)."""
    message = sender.send(conversation_id, "sync")

    def arrived(event) -> bool:
        return created(conversation_id, message["id"])(event) or (
            event.name == "message-created" and event.json()["id"] == message["id"]
        )

    ids = [wait_for(s, arrived).id for s in streams]
    return ids[-1]


def assert_only(stream: Stream, event_id: str) -> None:
    """Nothing stored reached the stream but the frames of `event_id`, and nothing live but
    presence (and the stream's hello)."""
    assert stored_ids(stream) == {event_id}, stream.describe()
    live = {e.name for e in stream.events if e.id is None}
    assert live <= {"presence", "hello"}, stream.describe()


@pytest.fixture
def people(make) -> SimpleNamespace:
    return SimpleNamespace(
        ada=make.user("Ada"), bob=make.user("Bob"), cara=make.user("Cara"), dan=make.user("Dan")
    )


@pytest.fixture
def scene(make, people, visit, live) -> SimpleNamespace:
    """Ada, Bob and Dan in the group "Team"; Cara is not in it but has a private chat with Ada,
    through which `sync` reaches her. Who is told what does not depend on gunicorn: the test's
    own app serves them (the tests of several processes and of Redis are further down)."""
    return SimpleNamespace(
        group=make.group(people.ada, [people.bob, people.dan], "Team"),
        side=make.private(people.ada, people.cara),
        ada=visit(people.ada, live),
        bob=visit(people.bob, live),
        cara=visit(people.cara, live),
        dan=visit(people.dan, live),
    )


# The stream itself


def test_stream_answers_at_once_with_headers_for_proxies(server, visit, people):
    stream = visit(people.ada).stream()
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    # First, before any event or heartbeat (one a second here): an open stream straight away.
    assert stream.items[0] == Comment("connected")
    stream.wait(lambda items: Comment("heartbeat") in items, 3, "a heartbeat comment")
    assert [e.name for e in stream.events] == ["hello"]


def test_stream_says_hello_with_its_own_name_first(live, visit, people):
    ada = visit(people.ada)
    tabs = [ada.stream(), ada.stream(params={"format": "json"})]
    names = []
    for tab in tabs:
        hello = wait_for(tab, named("hello"))
        assert tab.events[0] is hello
        assert hello.id is None  # live only: never replayed
        names.append(hello.json()["stream"])
    assert all(re.fullmatch(r"[0-9a-f]{32}", name) for name in names)
    assert names[0] != names[1]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"visible": "false"}, "stream"),
        ({"stream": "x" * 65, "visible": "false"}, "stream"),
        ({"stream": "abc"}, "visible"),
        ({"stream": "abc", "visible": "maybe"}, "visible"),
    ],
)
def test_visibility_refuses_bad_input(client, make, auth, body, field):
    auth.login(make.user())
    response = client.post("/stream/visibility", json=body, headers={"Accept": "application/json"})
    assert response.status_code == 422
    assert response.get_json()["field"] == field


def test_visibility_of_an_unknown_stream_is_ignored(client, make, auth):
    auth.login(make.user())
    for body in ({"stream": "not-a-stream", "visible": True}, {"stream": "x", "visible": False}):
        assert client.post("/stream/visibility", json=body).status_code == 204
    assert (
        client.post("/stream/visibility", data={"stream": "x", "visible": "true"}).status_code
        == 204
    )


def test_visibility_needs_a_signed_in_user_and_the_csrf_token(client, make, auth):
    body = {"stream": "abc", "visible": False}
    headers = {"Accept": "application/json"}
    assert client.post("/stream/visibility", json=body, headers=headers).status_code == 401
    auth.login(make.user())
    response = client.post("/stream/visibility", json=body, headers=headers, csrf=False)
    assert response.status_code == 400


def test_stream_refuses_anonymous(live):
    for params in ({}, {"format": "json"}):
        stream = Stream(live.base_url, httpx.Cookies(), params)
        try:
            assert stream.status == 401
            assert "Log in" in stream.body
            assert stream.items == []
        finally:
            stream.close()


# Each event type reaches each participant, and never anyone else


def test_message_created_reaches_participants_only(scene, people):
    ada_tab, bob_tab, cara_tab = scene.ada.stream(), scene.bob.stream(), scene.cara.stream()
    body = '<b>Tom & "Jerry"</b>'
    message = scene.ada.send(scene.group, body)

    for tab in (ada_tab, bob_tab):
        event = wait_for(tab, created(scene.group, message["id"]))
        # Shown as the text it is (markdown-it escapes quotes as &quot;).
        assert "&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt;" in event.data
        assert "<b>" not in event.data
        assert f'data-author-id="{people.ada}"' in event.data
        assert event.id.isdigit()
        wait_for(tab, named("conversations-changed", str(scene.group)))
    ada_event = wait_for(ada_tab, created(scene.group, message["id"]))
    # The others' unread badge counts up; the author's own message is not unread for her.
    event = wait_for(bob_tab, named("unread-changed"))
    assert frames_of(bob_tab, event.id) == [
        f"message-created-{scene.group}",
        "conversations-changed",
        "unread-changed",
    ]
    sync_id = sync(scene.ada, scene.side, ada_tab, cara_tab)
    assert frames_of(ada_tab, ada_event.id) == [
        f"message-created-{scene.group}",
        "conversations-changed",
    ]
    assert_only(cara_tab, sync_id)


def test_a_photo_reaches_participants_and_only_they_can_fetch_it(scene, people):
    """A media message travels like a text one; the real server then serves the file (in
    parts, as a video player asks) to members and to no one else."""
    bob_tab, bob_json = scene.bob.stream(), scene.bob.stream({"format": "json"})
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(picture, format="PNG")
    response = scene.ada.request(
        "POST",
        f"/conversations/{scene.group}/messages",
        data={"body": "the view"},
        files={"file": ("view.png", picture.getvalue(), "image/png")},
    )
    assert response.status_code == 201, response.text
    message = response.json()
    thumbnail = message["attachment"]["thumbnail_url"]

    event = wait_for(bob_tab, created(scene.group, message["id"]))
    assert f'src="{thumbnail}"' in event.data
    assert 'width="64" height="48"' in event.data
    data = wait_for(bob_json, named("message-created")).json()
    assert (data["type"], data["attachment"]) == ("image", message["attachment"])

    part = scene.bob.request("GET", message["attachment"]["url"], headers={"Range": "bytes=0-7"})
    assert part.status_code == 206
    assert part.content == b"\x89PNG\r\n\x1a\n"
    assert part.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert scene.cara.request("GET", thumbnail).status_code == 404

    # Images are checked in a thread of the gevent worker; a refusal still comes back as one.
    broken = scene.ada.request(
        "POST",
        f"/conversations/{scene.group}/messages",
        files={"file": ("cut.png", picture.getvalue()[:60], "image/png")},
    )
    assert broken.status_code == 400, broken.text
    assert "damaged" in broken.json()["error"]


def test_message_deleted_reaches_participants_only(scene, people):
    message = scene.ada.send(scene.group, "oops, wrong chat")
    ada_tab, bob_tab, cara_tab = scene.ada.stream(), scene.bob.stream(), scene.cara.stream()
    response = scene.ada.request("DELETE", f"/messages/{message['id']}")
    assert response.status_code == 200, response.text

    for tab in (ada_tab, bob_tab):
        event = wait_for(tab, named(f"message-deleted-{scene.group}"))
        assert f'id="m{message["id"]}"' in event.data
        assert "Message deleted" in event.data
        assert "oops" not in event.data
    event = wait_for(bob_tab, named("unread-changed"))
    assert frames_of(bob_tab, event.id) == [
        f"message-deleted-{scene.group}",
        "conversations-changed",
        "unread-changed",
    ]
    ada_event = wait_for(ada_tab, named(f"message-deleted-{scene.group}"))
    assert_only(cara_tab, sync(scene.ada, scene.side, ada_tab, cara_tab))
    assert frames_of(ada_tab, ada_event.id) == [
        f"message-deleted-{scene.group}",
        "conversations-changed",
    ]


def test_conversation_created_appears_in_new_members_list(scene, people):
    ada_tab, bob_tab, cara_tab = scene.ada.stream(), scene.bob.stream(), scene.cara.stream()
    response = scene.ada.request(
        "POST", "/conversations", json={"type": "group", "name": "Launch", "user_ids": [people.bob]}
    )
    assert response.status_code == 201, response.text
    new = response.json()["id"]

    for tab in (ada_tab, bob_tab):
        event = wait_for(tab, named("conversations-changed", str(new)))
        assert frames_of(tab, event.id) == ["conversations-changed"]
    # What the refreshed list then shows Bob.
    listed = scene.bob.request("GET", "/conversations").json()["conversations"]
    assert new in [c["id"] for c in listed]
    assert_only(cara_tab, sync(scene.ada, scene.side, cara_tab))


def test_conversation_updated_on_rename(scene):
    bob_tab, dan_tab, cara_tab = scene.bob.stream(), scene.dan.stream(), scene.cara.stream()
    response = scene.ada.request("PATCH", f"/conversations/{scene.group}", json={"name": "Crew"})
    assert response.status_code == 200, response.text

    for tab in (bob_tab, dan_tab):
        event = wait_for(tab, named(f"conversation-updated-{scene.group}"))
        assert frames_of(tab, event.id) == [
            f"conversation-updated-{scene.group}",
            "conversations-changed",
        ]
    shown = scene.bob.request("GET", f"/conversations/{scene.group}").json()
    assert shown["conversation"]["name"] == "Crew"
    assert_only(cara_tab, sync(scene.ada, scene.side, cara_tab))


@pytest.mark.parametrize("how", ["removed", "left"])
def test_removed_member_is_told_and_stops_receiving_at_once(scene, people, make, how):
    ada_tab, bob_tab = scene.ada.stream(), scene.bob.stream()
    dan_tab, cara_tab = scene.dan.stream(), scene.cara.stream()
    actor = scene.ada if how == "removed" else scene.bob
    response = actor.request("DELETE", f"/conversations/{scene.group}/participants/{people.bob}")
    assert response.status_code in (200, 204), response.text

    event = wait_for(bob_tab, named(f"conversation-removed-{scene.group}"))
    notice = "You were removed" if how == "removed" else "You left"
    assert notice in event.data
    assert frames_of(bob_tab, event.id) == [
        f"conversation-removed-{scene.group}",
        "conversations-changed",
        "unread-changed",
    ]
    for tab in (ada_tab, dan_tab):
        wait_for(tab, named(f"conversation-updated-{scene.group}"))
    # The already open stream of the one who is out gets nothing more from the group.
    later = scene.ada.send(scene.group, "after Bob went")
    wait_for(dan_tab, created(scene.group, later["id"]))
    sync_id = sync(scene.ada, make.private(people.ada, people.bob), bob_tab)
    assert not [e for e in bob_tab.events if e.name.endswith(f"-{scene.group}") and e is not event]
    # Besides the removal and the sync message, only the new private chat's creation.
    others = stored_ids(bob_tab) - {event.id, sync_id}
    assert all(frames_of(bob_tab, i) == ["conversations-changed"] for i in others)
    assert_only(cara_tab, sync(scene.ada, scene.side, cara_tab))


def test_read_updates_the_readers_other_tabs_and_tells_the_others_it_was_seen(scene, people):
    reading_tab, other_tab = scene.bob.stream(), scene.bob.stream()
    ada_tab, cara_tab = scene.ada.stream(), scene.cara.stream()
    message = scene.ada.send(scene.group, "read me")
    sent = wait_for(other_tab, created(scene.group, message["id"]))
    assert scene.bob.request("GET", "/conversations/unread").json() == {"unread": 1}

    response = scene.bob.request("POST", f"/conversations/{scene.group}/read")
    assert response.status_code == 204, response.text
    read = wait_for(other_tab, lambda e: e.name == "unread-changed" and e.id != sent.id)
    assert frames_of(other_tab, read.id) == ["conversations-changed", "unread-changed"]
    wait_for(reading_tab, lambda e: e.id == read.id)
    assert scene.bob.request("GET", "/conversations/unread").json() == {"unread": 0}
    sync(scene.bob, scene.group, ada_tab)
    # Ada got Bob's message, and that he has read the group: one frame, for the "Seen" line
    # (her list and her unread count do not change).
    seen = [i for i in stored_ids(ada_tab) if not frames_of(ada_tab, i)[0].startswith("message-")]
    assert [frames_of(ada_tab, i) for i in seen] == [[f"conversation-read-{scene.group}"]], (
        ada_tab.describe()
    )
    assert_only(cara_tab, sync(scene.ada, scene.side, cara_tab))


def test_typing_reaches_the_others_not_the_typer(scene, people):
    ada_tab, bob_tab, cara_tab = scene.ada.stream(), scene.bob.stream(), scene.cara.stream()
    response = scene.ada.request("POST", f"/conversations/{scene.group}/typing")
    assert response.status_code == 204, response.text

    event = wait_for(bob_tab, named(f"typing-{scene.group}"))
    assert "Ada is typing" in event.data
    assert event.id is None  # live only: never replayed
    sync(scene.ada, scene.group, ada_tab)
    assert not [e for e in ada_tab.events if e.name.startswith("typing")]
    assert_only(cara_tab, sync(scene.ada, scene.side, cara_tab))


@pytest.mark.long
def test_presence_online_then_offline_after_grace(make, people, visit, server, redis_server):
    make.private(people.ada, people.bob)
    known = make.private(people.bob, people.cara)  # Cara knows Bob, not Ada
    bob, cara = visit(people.bob), visit(people.cara)
    bob_tab, cara_tab = bob.stream(), cara.stream()

    def about_ada(online: bool):
        return json_event("presence", user_id=people.ada, online=online)

    ada_tab = visit(people.ada).stream()
    event = wait_for(bob_tab, about_ada(True))
    assert event.id is None
    sync(bob, known, cara_tab)
    assert not [e for e in cara_tab.events if about_ada(True)(e)]

    closed = time.monotonic()
    ada_tab.close()
    # The server notices the closed connection at its next heartbeat (1 s here) and lets go
    # of the stream: its presence mark in Redis is gone.
    key = f"{server.env['REDIS_PREFIX']}:online:{people.ada}"
    with redis.Redis.from_url(redis_server) as client:
        deadline = time.monotonic() + 3
        while client.zcard(key) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.zcard(key) == 0
    grace = float(server.env["PRESENCE_OFFLINE_GRACE"])
    wait_for(bob_tab, about_ada(False), timeout=grace + 6)
    assert time.monotonic() - closed >= grace  # moving between pages: no flicker
    assert len([e for e in bob_tab.events if about_ada(True)(e)]) == 1


def test_json_stream_for_api_clients(scene, people):
    ada_tab = scene.ada.stream(params={"format": "json"})
    bob_tab = scene.bob.stream(params={"format": "json"})
    cara_tab = scene.cara.stream(params={"format": "json"})
    group = scene.group

    presence = wait_for(ada_tab, json_event("presence", user_id=people.bob, online=True))
    assert presence.json()["conversation_id"] is None
    message = scene.ada.send(group, "Hello API")
    for tab in (ada_tab, bob_tab):
        event = wait_for(tab, json_event("message-created", id=message["id"]))
        assert event.json()["conversation_id"] == group
        assert event.json()["body"] == "Hello API"
        assert event.json()["user_id"] == people.ada
        assert event.id.isdigit()
        assert frames_of(tab, event.id) == ["message-created"]  # one frame per event

    scene.ada.request("POST", f"/conversations/{group}/typing")
    typing = wait_for(bob_tab, json_event("typing", conversation_id=group))
    assert typing.id is None
    scene.ada.request("DELETE", f"/messages/{message['id']}")
    wait_for(bob_tab, json_event("message-deleted", id=message["id"], deleted=True, body=""))
    scene.ada.request("PATCH", f"/conversations/{group}", json={"name": "Crew"})
    wait_for(bob_tab, json_event("conversation-updated", conversation_id=group, name="Crew"))
    scene.bob.request("POST", f"/conversations/{group}/read")
    wait_for(bob_tab, json_event("read", conversation_id=group))
    response = scene.ada.request(
        "POST", "/conversations", json={"type": "group", "name": "Two", "user_ids": [people.bob]}
    )
    new = response.json()["id"]
    wait_for(bob_tab, json_event("conversation-created", conversation_id=new, name="Two"))
    scene.ada.request("DELETE", f"/conversations/{new}/participants/{people.bob}")
    wait_for(bob_tab, json_event("conversation-removed", conversation_id=new))

    assert len({e.id for e in bob_tab.events if e.id}) == len([e for e in bob_tab.events if e.id])
    message = scene.ada.send(scene.side, "sync")
    event = wait_for(cara_tab, json_event("message-created", id=message["id"]))
    assert_only(cara_tab, event.id)


# Several server processes


def test_two_server_processes_share_events_through_redis(make, people, visit, start_server):
    group = make.group(people.ada, [people.bob], "Team")
    first, second = start_server(), start_server()
    bob = visit(people.bob, first)
    ada = visit(people.ada, second)
    bob_tab = bob.stream()
    ada_tab = ada.stream()
    wait_for(bob_tab, json_event("presence", user_id=people.ada, online=True))

    message = ada.send(group, "from the second server")
    wait_for(bob_tab, created(group, message["id"]))
    wait_for(ada_tab, created(group, message["id"]))
    ada.request("POST", f"/conversations/{group}/typing")
    wait_for(bob_tab, named(f"typing-{group}"))
    reply = bob.send(group, "from the first server")
    wait_for(ada_tab, created(group, reply["id"]))
    wait_for(bob_tab, created(group, reply["id"]))
    assert message_ids(bob_tab, group) == [message["id"], reply["id"]]


# Nothing lost across reconnects


@pytest.mark.parametrize("resume_with", ["Last-Event-ID header", "last_event_id query"])
def test_resumed_stream_gets_what_it_missed_once_in_order(make, people, visit, live, resume_with):
    group = make.group(people.ada, [people.bob], "Team")
    ada, bob = visit(people.ada), visit(people.bob)
    tab = bob.stream()
    seen = ada.send(group, "seen live")
    wait_for(tab, created(group, seen["id"]))
    last = wait_for(tab, named("unread-changed")).id
    tab.close()

    missed = [ada.send(group, f"missed {n}")["id"] for n in (1, 2, 3)]
    if resume_with == "Last-Event-ID header":
        tab = bob.stream(headers={"Last-Event-ID": last})
    else:
        tab = bob.stream(params={"last_event_id": last})
    wait_for(tab, created(group, missed[-1]))
    again = ada.send(group, "live again")["id"]
    wait_for(tab, created(group, again))
    then = ada.send(group, "and then")["id"]
    wait_for(tab, unread_of(tab, group, then))

    assert message_ids(tab, group) == [*missed, again, then]
    ids = [int(e.id) for e in tab.events if e.name.startswith("message-created")]
    assert ids == sorted(set(ids)) and min(ids) > int(last)
    for event_id in stored_ids(tab):
        assert frames_of(tab, event_id) == [
            f"message-created-{group}",
            "conversations-changed",
            "unread-changed",
        ]


def unread_of(stream: Stream, group: int, message_id: int):
    """The last frame (unread-changed) of the event that created this message."""
    event = wait_for(stream, created(group, message_id))
    return lambda e: e.name == "unread-changed" and e.id == event.id


def test_messages_sent_while_reconnecting_arrive_once_in_order(make, people, visit, live):
    group = make.group(people.ada, [people.bob], "Team")
    ada, bob = visit(people.ada), visit(people.bob)
    tab = bob.stream()
    first = ada.send(group, "first")["id"]
    last = wait_for(tab, created(group, first)).id
    tab.close()

    sent, errors = [], []

    def keep_sending():
        try:
            for n in range(20):
                sent.append(ada.send(group, f"burst {n}")["id"])
        except Exception as error:  # reported below, not raised in the thread
            errors.append(error)

    sender = threading.Thread(target=keep_sending)
    sender.start()
    deadline = time.monotonic() + 10
    while len(sent) < 5 and sender.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    tab = bob.stream(headers={"Last-Event-ID": last})  # mid-burst: replay, then live
    sender.join(30)
    assert not errors and len(sent) == 20
    final = ada.send(group, "final")["id"]
    wait_for(tab, unread_of(tab, group, final))

    assert message_ids(tab, group) == [*sent, final]


# Each user's events are numbered 1, 2, 3... and delivered in that order


def test_stream_resuming_past_the_users_latest_event_is_told_to_reload(people, visit, live):
    """A page from before a database reset must not skip everything up to its old number."""
    tab = visit(people.bob).stream(headers={"Last-Event-ID": "500"})
    event = wait_for(tab, named("reload"))
    assert "history changed" in event.data


@pytest.fixture
def redis_user(redis_server) -> Iterator[tuple[str, redis.Redis]]:
    """A Redis URL with a user of its own, whose PUBLISH rights a test can take away (ACL):
    publishing then fails while Redis itself stays up, as under a timeout or a failover."""
    admin = redis.Redis.from_url(redis_server)
    name = f"chipper-{uuid.uuid4().hex[:8]}"
    admin.execute_command("ACL", "SETUSER", name, "on", ">pw", "~*", "&*", "+@all")
    yield redis_server.replace("redis://", f"redis://{name}:pw@"), name, admin
    admin.execute_command("ACL", "DELUSER", name)
    admin.close()


def test_a_failed_publish_is_retried_and_reaches_other_processes(
    make, people, visit, start_server, redis_user
):
    url, name, admin = redis_user
    first, second = start_server(REDIS_URL=url), start_server()
    group = make.group(people.ada, [people.bob], "Team")
    ada, bob = visit(people.ada, first), visit(people.bob, second)
    tab = bob.stream()
    tab.wait(lambda items: Comment("connected") in items, 5, "the stream to open")

    admin.execute_command("ACL", "SETUSER", name, "-publish")
    message = ada.send(group, "held back")  # committed: the sender is not told it failed
    # The first server met the refusal and keeps the event to publish again. (Whether Bob's
    # tab has it yet is not asserted: under load a CI run once saw it arrive before Redis
    # took the permission back; what matters is that it arrives, once.)
    deadline = time.monotonic() + 10
    while "could not publish message-created; will retry" not in first.log():
        assert time.monotonic() < deadline, first.log()
        time.sleep(0.05)
    admin.execute_command("ACL", "SETUSER", name, "+publish")
    wait_for(tab, created(group, message["id"]))
    time.sleep(0.5)  # a second copy would come within the retry interval
    assert message_ids(tab, group) == [message["id"]]


@pytest.mark.long
def test_the_sending_server_hands_events_to_its_own_streams_without_redis(
    make, people, visit, start_server, redis_user
):
    """Bob's tab is on the server Ada sends through, Cara's on another. While Redis refuses
    that server's publishes, Bob still sees the message at once; Cara sees it once Redis takes
    it, and Bob's tab does not get it a second time when it comes back through Redis."""
    url, name, admin = redis_user
    first, second = start_server(REDIS_URL=url), start_server()
    group = make.group(people.ada, [people.bob, people.cara], "Team")
    ada = visit(people.ada, first)
    bob_tab, cara_tab = visit(people.bob, first).stream(), visit(people.cara, second).stream()
    for tab in (bob_tab, cara_tab):
        # Heartbeats come from the live loop: the server's subscription is up and the stream
        # has caught up from the database (which it also does when the subscription comes up),
        # so the message below can reach Cara only through Redis.
        tab.wait(lambda items: Comment("heartbeat") in items, 5, "the stream to go live")

    admin.execute_command("ACL", "SETUSER", name, "-publish")
    message = ada.send(group, "straight to this server's tabs")
    wait_for(bob_tab, created(group, message["id"]))
    time.sleep(1.0)
    assert message_ids(cara_tab, group) == [], cara_tab.describe()

    admin.execute_command("ACL", "SETUSER", name, "+publish")
    wait_for(cara_tab, created(group, message["id"]))
    # A later message through Redis too: by its arrival anything echoed has arrived as well.
    later = visit(people.cara, second).send(group, "and back")
    for tab in (bob_tab, cara_tab):
        wait_for(tab, created(group, later["id"]))
    assert message_ids(bob_tab, group) == [message["id"], later["id"]]
    assert message_ids(cara_tab, group) == [message["id"], later["id"]]


@pytest.mark.long
def test_an_event_that_never_came_live_is_read_back_in_order(
    make, people, visit, start_server, redis_user
):
    """Ada's first message cannot be published from the first server; her second, sent through
    the second server, arrives live ahead of it. Bob's stream holds the second until it has
    read the first from the database, and ignores the first when it is published at last."""
    url, name, admin = redis_user
    first, second = start_server(REDIS_URL=url), start_server()
    group = make.group(people.ada, [people.bob], "Team")
    ada_first, ada_second = visit(people.ada, first), visit(people.ada, second)
    tab = visit(people.bob, second).stream()
    tab.wait(lambda items: Comment("connected") in items, 5, "the stream to open")

    admin.execute_command("ACL", "SETUSER", name, "-publish")
    held = ada_first.send(group, "one")["id"]
    ahead = ada_second.send(group, "two")["id"]
    wait_for(tab, created(group, ahead))
    assert message_ids(tab, group) == [held, ahead]

    admin.execute_command("ACL", "SETUSER", name, "+publish")
    time.sleep(0.5)  # the first server's retry publishes "one" now
    then = ada_second.send(group, "three")["id"]
    wait_for(tab, created(group, then))
    assert message_ids(tab, group) == [held, ahead, then]
    ids = [int(e.id) for e in tab.events if e.name.startswith("message-created")]
    assert ids == sorted(set(ids))


# Field injection


def test_newlines_in_a_message_cannot_forge_events(scene):
    html_tab = scene.bob.stream()
    json_tab = scene.bob.stream(params={"format": "json"})
    body = "hi\n\nevent: forged\ndata: gotcha\r\nid: 999999\rretry: 1"
    message = scene.ada.send(scene.group, body)

    event = wait_for(html_tab, created(scene.group, message["id"]))
    assert event.lines[:2] == [f"event: message-created-{scene.group}", f"id: {event.id}"]
    assert len(event.lines) > 3
    assert all(line.startswith("data: ") for line in event.lines[2:])
    assert "event: forged" in event.data and "id: 999999" in event.data
    sent = wait_for(json_tab, json_event("message-created", id=message["id"]))
    assert sent.json()["body"] == message["body"]
    assert len(sent.lines) == 3  # event, id, one data line

    sync(scene.ada, scene.group, html_tab, json_tab)
    for tab in (html_tab, json_tab):
        assert not [e for e in tab.events if e.name == "forged" or e.id == "999999"]
        assert not [e for e in tab.events if e.name == "message"]


# Slow and closed clients


# Redis going away


def page_stream(visitor: Visitor) -> Stream:
    """The stream a page opens: the URL of its sse-connect attribute, which carries the
    last_event_id the page was rendered at."""
    page = visitor.request("GET", "/conversations", headers={"Accept": "text/html"})
    url = html.unescape(re.search(r'sse-connect="([^"]+)"', page.text).group(1))
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert urlsplit(url).path == "/stream" and int(params["last_event_id"]) > 0
    return visitor.stream(params=params)


def subscribed(redis_url: str, server: Server, count: int, timeout: float = 15) -> None:
    """Waits until `count` server processes subscribe to the server's events channel."""
    channel = f"{server.env['REDIS_PREFIX']}:events"
    deadline = time.monotonic() + timeout
    with redis.Redis.from_url(redis_url) as client:
        while client.pubsub_numsub(channel)[0][1] < count:
            assert time.monotonic() < deadline, f"{count} subscribers to {channel} expected"
            time.sleep(0.05)


def test_redis_restart_loses_nothing_and_fails_no_request(
    make, people, visit, start_server, redis_restart
):
    group = make.group(people.ada, [people.bob], "Team")
    make.message(people.ada, group, "before the page was opened")
    first, second = start_server(), start_server()
    bob, ada = visit(people.bob, first), visit(people.ada, second)
    bob_page = page_stream(bob)

    redis_restart.stop()
    message = ada.send(group, "while Redis is away")  # committed: 201, never a 500
    doomed = ada.send(group, "to be deleted")
    assert ada.request("DELETE", f"/messages/{doomed['id']}").status_code == 200
    assert ada.request("PATCH", f"/conversations/{group}", json={"name": "Crew"}).is_success
    for visitor in (ada, bob):
        assert visitor.request("GET", "/conversations").status_code == 200
        for path in ("/conversations", f"/conversations/{group}"):
            page = visitor.request("GET", path, headers={"Accept": "text/html"})
            assert page.status_code == 200, path
        assert visitor.request("GET", "/conversations/unread").status_code == 200
        assert visitor.request("POST", f"/conversations/{group}/typing").status_code == 204
        assert visitor.request("POST", f"/conversations/{group}/read").status_code == 204
    redis_restart.start()

    wait_for(bob_page, created(group, message["id"]), timeout=15)
    after = ada.send(group, "Redis is back")
    wait_for(bob_page, unread_of(bob_page, group, after["id"]), timeout=15)
    assert message_ids(bob_page, group) == [message["id"], doomed["id"], after["id"]]
    deleted = [e for e in bob_page.events if e.name == f"message-deleted-{group}"]
    assert len(deleted) == 1 and f'id="m{doomed["id"]}"' in deleted[0].data
    assert len([e for e in bob_page.events if e.name == f"conversation-updated-{group}"]) == 1


def test_stream_opened_while_redis_is_away_gets_events_once_it_is_back(
    make, people, visit, start_server, redis_restart
):
    group = make.group(people.ada, [people.bob], "Team")
    first, second = start_server(), start_server()
    bob, ada = visit(people.bob, first), visit(people.ada, second)

    redis_restart.stop()
    ada_page = page_stream(ada)  # the first stream of the second server
    message = bob.send(group, "sent through the other server while Redis is away")
    redis_restart.start()

    subscribed(redis_restart.url, second, count=1)  # the second server listens again
    after = bob.send(group, "Redis is back")
    wait_for(ada_page, unread_of(ada_page, group, after["id"]), timeout=15)
    assert message_ids(ada_page, group) == [message["id"], after["id"]]


@pytest.mark.long
def test_stream_opens_at_once_while_redis_is_away(make, people, visit, server, redis_restart):
    group = make.group(people.ada, [people.bob], "Team")
    bob = visit(people.bob)
    bob.stream().close()  # the server has subscribed to pub/sub

    redis_restart.stop()
    opened = time.monotonic()
    tab = bob.stream()
    # `: connected` at once (before the first 1 s heartbeat), not after waiting for Redis.
    assert time.monotonic() - opened < 1.0
    assert tab.items[0] == Comment("connected")
    message = visit(people.ada).send(group, "while Redis is away")
    wait_for(tab, created(group, message["id"]))


def test_api_stream_without_last_event_id_is_not_replayed_old_events(
    make, people, visit, server, redis_restart
):
    """A stream opened without Last-Event-ID starts now: catching up after Redis was away must
    not hand an API client its whole history again."""
    group = make.group(people.ada, [people.bob], "Team")
    old = make.message(people.ada, group, "long before")
    ada, bob = visit(people.ada), visit(people.bob)
    api = bob.stream(params={"format": "json"})

    redis_restart.stop()
    message = ada.send(group, "while Redis is away")
    redis_restart.start()
    after = ada.send(group, "Redis is back")
    wait_for(api, json_event("message-created", id=after["id"]), timeout=15)

    received = [e.json()["id"] for e in api.events if e.name == "message-created"]
    assert old not in received
    assert received == [message["id"], after["id"]]
    assert not [e for e in api.events if e.name == "conversation-created"]


# Without Redis, and what gunicorn refuses


@pytest.mark.parametrize("flask_run", [False, True], ids=["gunicorn", "flask run"])
def test_embedded_hub_without_redis_delivers_in_one_process(
    make, people, visit, start_server, flask_run
):
    group = make.group(people.ada, [people.bob], "Team")
    embedded = start_server(redis=False, flask_run=flask_run)
    assert "REDIS_URL" not in embedded.env
    ada, bob = visit(people.ada, embedded), visit(people.bob, embedded)
    bob_tab = bob.stream()
    message = ada.send(group, "no Redis needed")
    event = wait_for(bob_tab, created(group, message["id"]))
    assert "no Redis needed" in event.data


@pytest.mark.long
def test_gunicorn_keeps_a_browsers_connection_between_messages_sent_seconds_apart(server):
    """Someone chatting every few seconds sends each message over the connection they already
    have: no new TCP connection (and its round trips) per message."""
    request = (
        f"GET /login HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAccept: application/json\r\n\r\n"
    ).encode()

    def answer(sock: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(body) < length:
            body += sock.recv(65536)
        return head.split(b"\r\n")[0]

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        assert answer(sock) == b"HTTP/1.1 200 OK"
        time.sleep(6)  # longer than the 5 s gunicorn.conf.py used to keep an idle connection
        sock.sendall(request)
        assert answer(sock) == b"HTTP/1.1 200 OK"


def test_gunicorn_refuses_two_workers_without_redis(database_url, tmp_path):
    refused = Server({"WEB_CONCURRENCY": "2", "DATABASE_URL": database_url}, tmp_path / "log")
    result = refused.run()
    assert result.returncode != 0
    assert "Set REDIS_URL to run more than one worker" in result.stdout + result.stderr
