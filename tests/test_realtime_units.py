"""The rooms of chipper.realtime on their own: the kinds registry, the wire format, putting
events in order, the hub's queues and presence. No server, no database."""

import json
import queue
import time
import uuid

import pytest
import redis

from chipper.realtime import wire
from chipper.realtime.hub import Hub
from chipper.realtime.kinds import KINDS, Envelope, kind_of
from chipper.realtime.presence import LocalPresence, RedisPresence
from chipper.realtime.stream import InOrder


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_presence_knows_who_is_watching(kind, redis_server):
    if kind == "local":
        presence = LocalPresence()
    else:
        client = redis.Redis.from_url(redis_server)
        presence = RedisPresence(client, f"chipper-test-{uuid.uuid4().hex[:12]}")
    try:
        assert presence.watching([1, 2]) == set()
        presence.connect(1, "tab-a")
        presence.connect(1, "tab-b")
        assert presence.watching([1, 2]) == {1}  # a new stream counts as visible
        assert presence.set_visible(1, "tab-a", False)
        assert presence.watching([1]) == {1}  # tab-b is still visible
        presence.set_visible(1, "tab-b", False)
        assert presence.watching([1]) == set()
        assert presence.online([1]) == {1}  # hidden tabs are still online
        presence.refresh(1, "tab-b")
        assert presence.watching([1]) == set()  # a heartbeat does not make a tab visible
        assert presence.set_visible(1, "tab-b", True)
        assert presence.watching([1]) == {1}
        presence.disconnect(1, "tab-b")
        assert presence.watching([1]) == set()  # a closed stream stops counting at once
        # Only open streams of that user can be marked visible.
        assert not presence.set_visible(1, "tab-b", True)
        assert not presence.set_visible(2, "tab-a", True)
        assert presence.watching([1, 2]) == set()
    finally:
        if kind == "redis":
            client.close()


def test_in_order_holds_an_early_event_until_the_one_before_it_arrives():
    order = InOrder(last=4, known=4)
    assert order.live(6, {"n": 6}) == []  # 5 is still on its way
    assert order.gap_age() is not None
    assert order.live(7, {"n": 7}) == []
    assert [seq for seq, _ in order.live(5, {"n": 5})] == [5, 6, 7]
    assert order.gap_age() is None
    assert order.live(6, {"n": 6}) == []  # a repeat is never sent twice
    # A catch-up from the database fills a gap and skips what was sent already.
    assert order.live(9, {"n": 9}) == []
    rows = [(seq, {"n": seq}) for seq in (7, 8, 9)]
    assert order.replay_is_whole(rows)
    assert [seq for seq, _ in order.replayed(rows)] == [8, 9]
    assert (order.last, order.gap_age()) == (9, None)
    # Stored rows that start after a hole (pruned) or none when some are known: reload.
    assert not order.replay_is_whole([(12, {})])
    order.live(11, {})
    assert not order.replay_is_whole([])


@pytest.mark.parametrize(
    ("event", "event_id"),
    [("bad\nname", None), ("bad\rname", None), ("ok", "1\nevent: x"), ("ok", "1\r2")],
)
def test_frame_refuses_line_breaks_in_event_name_or_id(event, event_id):
    with pytest.raises(ValueError):
        wire.frame(event, "data", event_id)


def test_frame_puts_every_line_of_data_in_its_own_field():
    assert wire.frame("x", "a\n\nevent: y\r\nb\rc", 7) == (
        "event: x\nid: 7\ndata: a\ndata: \ndata: event: y\ndata: b\ndata: c\n\n"
    )


def test_hub_drops_a_slow_client_without_holding_up_the_others():
    hub = Hub(queue_size=3)
    slow, fast, outsider = hub.register(1), hub.register(2), hub.register(3)
    received = []
    started = time.monotonic()
    for n in range(1, 1001):
        hub.dispatch(Envelope("message-created", 1, [1, 2], id=n, seqs=[n, n + 5]))
        received.append(fast.get(timeout=0))
    assert time.monotonic() - started < 1  # a full queue never blocks dispatch
    assert [seq for seq, _ in received] == [n + 5 for n in range(1, 1001)]
    assert [envelope.id for _, envelope in received] == list(range(1, 1001))
    assert slow.dropped and not fast.dropped
    assert [seq for seq, _ in slow.items] == [1, 2, 3]
    with pytest.raises(queue.Empty):
        outsider.get(timeout=0.01)
    assert not outsider.dropped

    assert hub.stream_count() == 3
    for client in (slow, fast, outsider):
        hub.unregister(client)
    assert hub.stream_count() == 0
    hub.dispatch(
        Envelope("message-created", 1, [1, 2], id=1001, seqs=[1, 2])
    )  # nobody left: nothing to do


# Kinds and the frames they make


def names(envelope: Envelope, user_id: int = 9, fmt: str = "html") -> list[str]:
    text = wire.frames(envelope, user_id, fmt, 3)
    return [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event:")]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("message-created", ["message-created-5", "conversations-changed", "unread-changed"]),
        ("message-updated", ["message-updated-5", "conversations-changed"]),
        ("message-deleted", ["message-deleted-5", "conversations-changed", "unread-changed"]),
        ("conversation-created", ["conversations-changed"]),
        ("conversation-updated", ["conversation-updated-5", "conversations-changed"]),
        (
            "conversation-removed",
            ["conversation-removed-5", "conversations-changed", "unread-changed"],
        ),
        ("read", ["conversations-changed", "unread-changed"]),
        ("conversation-read", ["conversation-read-5"]),
        ("typing", ["typing-5"]),
        ("presence", ["presence"]),
        ("call-ringing", ["call-ringing-5", "call"]),
        ("call-updated", ["call-updated-5", "call"]),
        ("call-ended", ["call-ended-5", "call"]),
        ("call-signal", ["call-signal"]),
        ("profile-updated", ["profile-updated"]),
        # Streams end themselves on it (tests/test_sessions.py); it makes no page frame.
        ("sessions-ended", []),
    ],
)
def test_each_kind_becomes_the_frames_its_page_listens_for(kind, expected):
    assert names(Envelope(kind, 5, [9], "<p>x</p>", {"user_id": 1})) == expected
    # An API client gets one JSON frame named after the kind, whatever the kind.
    assert names(Envelope(kind, 5, [9], "<p>x</p>", {"user_id": 1}), fmt="json") == [kind]


def test_every_registered_kind_is_covered_above():
    assert len(KINDS) == 16


def test_your_own_message_does_not_touch_your_unread_badge():
    mine = Envelope("message-created", 5, [9], "<p>x</p>", {"user_id": 9})
    assert "unread-changed" not in names(mine, user_id=9)
    assert "unread-changed" in names(mine, user_id=8)


def test_json_frames_carry_the_conversation_and_the_data():
    text = wire.frames(Envelope("read", 5, [9], "", {"user_id": 9}), 9, "json", 4)
    data = json.loads(text.split("data: ", 1)[1])
    assert data == {"conversation_id": 5, "user_id": 9}
    assert "id: 4\n" in text


def test_an_unknown_or_misused_kind_is_refused_where_it_is_sent():
    with pytest.raises(ValueError, match="unknown event kind"):
        kind_of("message-edited", stored=True)
    with pytest.raises(ValueError, match="live only"):
        kind_of("typing", stored=True)
    with pytest.raises(ValueError, match="stored"):
        kind_of("message-created", stored=False)


def test_an_envelope_crosses_processes_without_its_frame_cache():
    envelope = Envelope("message-created", 5, [1, 2], "<p>é</p>", {"id": 7}, 40, [3, 8])
    wire.frames(envelope, 1, "html", 3)
    assert envelope.wire
    again = Envelope.from_json(envelope.to_json())
    assert (again.kind, again.conversation_id, again.recipients, again.html) == (
        "message-created",
        5,
        [1, 2],
        "<p>é</p>",
    )
    assert (again.data, again.id, again.seqs, again.wire) == ({"id": 7}, 40, [3, 8], {})
