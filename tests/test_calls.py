"""Calls: the lifecycle (every transition, the illegal ones), the missed-call timeout, one live
call per conversation, racing answers, who may do what, signaling and the timeline entries."""

import queue
import re
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from chipper.extensions import db
from chipper.models import Call, CallMember, Message, utcnow
from chipper.services.calls import ringing
from tests.conftest import HTMX, JSON, text
from tests.realtime_support import wait_for


@pytest.fixture
def chat(make, ada, bob) -> int:
    """Ada and Bob's private conversation; `client` is Ada."""
    return make.private(ada, bob)


@pytest.fixture
def bob_client(login_client, bob):
    return login_client(bob)


def start(client, conversation_id: int, call_type: str = "audio", headers=JSON):
    return client.post(
        f"/conversations/{conversation_id}/calls", json={"type": call_type}, headers=headers
    )


def ring(client, chat: int, call_type: str = "audio") -> int:
    response = start(client, chat, call_type)
    assert response.status_code == 201, text(response)
    return response.get_json()["id"]


def act(client, call_id: int, action: str):
    return client.post(f"/calls/{call_id}/{action}", headers=JSON)


def status_of(sql, call_id: int) -> str:
    return sql.scalar(sa.select(Call.status).where(Call.id == call_id))


def states(sql, call_id: int) -> dict[int, str]:
    rows = sql.rows(
        sa.select(CallMember.user_id, CallMember.state).where(CallMember.call_id == call_id)
    )
    return dict(rows)


def entries(sql, chat: int) -> list[tuple]:
    """(body, call id, author) of the conversation's call messages."""
    return sql.rows(
        sa.select(Message.body, Message.call_id, Message.user_id)
        .where(Message.conversation_id == chat, Message.type == "call")
        .order_by(Message.id)
    )


def sweep(app) -> None:
    """What the scheduler's sweep does every CALL_SWEEP_INTERVAL, now."""
    with app.app_context():
        ringing.sweep()


def rang_out(sql, call_id: int) -> None:
    """Moves the call's start an hour back, as if it had rung out with no job to record it
    (its process stopped)."""
    sql.write(
        sa.update(Call).where(Call.id == call_id).values(created_at=utcnow() - timedelta(hours=1))
    )


# Transitions


def test_start_rings_the_other_members(client, sql, chat, ada, bob):
    response = start(client, chat, "video")
    assert response.status_code == 201
    call = response.get_json()
    assert call["status"] == "ringing"
    assert call["type"] == "video"
    assert call["initiated_by"] == ada
    assert call["started_at"] is None and call["duration"] is None
    assert {m["user_id"]: m["state"] for m in call["members"]} == {ada: "joined", bob: "invited"}
    assert entries(sql, chat) == []


def test_answer_makes_the_call_active(client, bob_client, sql, chat, bob):
    call_id = ring(client, chat)
    response = act(bob_client, call_id, "answer")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "active"
    assert body["started_at"] is not None
    assert states(sql, call_id)[bob] == "joined"


@pytest.mark.parametrize("who", ["caller", "callee"])
def test_hanging_up_an_active_call_ends_it_with_its_duration(
    client, bob_client, sql, chat, ada, who
):
    call_id = ring(client, chat)
    act(bob_client, call_id, "answer")
    # Answered three minutes and twelve seconds ago.
    sql.write(
        sa.update(Call)
        .where(Call.id == call_id)
        .values(started_at=utcnow() - timedelta(seconds=192))
    )
    response = act(client if who == "caller" else bob_client, call_id, "end")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ended"
    assert body["ended_at"] is not None
    assert body["duration"] in (192, 193)
    assert set(states(sql, call_id).values()) == {"left"}
    assert entries(sql, chat) == [(body["summary"], call_id, ada)]
    assert body["summary"] in ("Audio call, 3:12", "Audio call, 3:13")


def test_decline_by_the_callee_declines_the_call(client, bob_client, sql, chat):
    call_id = ring(client, chat, "video")
    response = act(bob_client, call_id, "decline")
    assert response.status_code == 200
    assert response.get_json()["status"] == "declined"
    assert [e[0] for e in entries(sql, chat)] == ["Declined video call"]


def test_caller_hanging_up_while_ringing_cancels(client, sql, chat):
    call_id = ring(client, chat)
    response = act(client, call_id, "end")
    assert response.get_json()["status"] == "cancelled"
    assert [e[0] for e in entries(sql, chat)] == ["Cancelled audio call"]
    # The conversation is free for a new call.
    assert ring(client, chat) != call_id


def test_group_call_goes_on_until_one_person_is_left(
    make, client, login_client, sql, ada, bob, cara
):
    team = make.group(ada, [bob, cara])
    call_id = ring(client, team)
    bob_tab, cara_tab = login_client(bob), login_client(cara)
    assert act(bob_tab, call_id, "answer").get_json()["status"] == "active"
    assert act(cara_tab, call_id, "answer").status_code == 200
    assert act(bob_tab, call_id, "end").get_json()["status"] == "active"
    assert states(sql, call_id) == {ada: "joined", bob: "left", cara: "joined"}
    assert act(client, call_id, "end").get_json()["status"] == "ended"


def test_declining_a_group_call_stops_only_your_ringing(
    make, client, login_client, sql, ada, bob, cara
):
    team = make.group(ada, [bob, cara])
    call_id = ring(client, team)
    assert act(login_client(bob), call_id, "decline").get_json()["status"] == "ringing"
    assert act(login_client(cara), call_id, "decline").get_json()["status"] == "declined"
    assert states(sql, call_id) == {ada: "left", bob: "declined", cara: "declined"}


def test_summary_lines():
    call = Call(type="video", status="ended", started_at=utcnow())
    call.ended_at = call.started_at + timedelta(hours=1, seconds=5)
    assert call.summary == "Video call, 1:00:05"
    call.status = "missed"
    assert call.summary == "Missed video call"


# Illegal transitions


@pytest.mark.parametrize(
    ("setup", "who", "action", "status", "message"),
    [
        ("ended", "callee", "answer", 409, "This call is over"),
        ("ended", "caller", "end", 409, "already over"),
        ("ended", "callee", "decline", 409, "not ringing for you"),
        ("active", "callee", "decline", 409, "not ringing for you"),
        ("active", "callee", "answer", 409, "already in this call"),
        ("ringing", "caller", "decline", 409, "not ringing for you"),
        ("ringing", "caller", "answer", 409, "already in this call"),
        ("ringing", "callee", "end", 403, "Only people in the call can end it."),
        ("declined", "caller", "end", 409, "already over"),
        ("declined", "callee", "answer", 409, "This call is over (declined audio call)."),
        ("cancelled", "callee", "answer", 409, "This call is over (cancelled audio call)."),
        ("missed", "callee", "decline", 409, "not ringing for you"),
        ("missed", "callee", "end", 409, "already over (missed audio call)"),
        ("missed", "caller", "end", 409, "already over (missed audio call)"),
        # Rung out, not yet recorded missed by the timeout's job: it reads as missed anyway.
        ("rang out", "callee", "answer", 409, "This call is over (missed audio call)."),
        ("rang out", "callee", "decline", 409, "not ringing for you"),
        ("rang out", "callee", "end", 409, "already over (missed audio call)"),
        ("rang out", "caller", "end", 409, "already over (missed audio call)"),
        # Someone who joined the conversation after the call started: it never rang for them.
        ("active", "late member", "end", 403, "Only people in the call can end it."),
        ("ringing", "late member", "end", 403, "Only people in the call can end it."),
    ],
)
def test_illegal_transitions_are_refused(
    app,
    make,
    client,
    bob_client,
    login_client,
    sql,
    ada,
    bob,
    cara,
    setup,
    who,
    action,
    status,
    message,
):
    # A group, so someone can join the conversation while the call is on; the rules are the
    # same as in a private conversation.
    team = make.group(ada, [bob])
    call_id = ring(client, team)
    client.post(f"/conversations/{team}/participants", json={"user_ids": [cara]}, headers=JSON)
    if setup in ("active", "ended"):
        act(bob_client, call_id, "answer")
    if setup == "ended":
        act(client, call_id, "end")
    if setup == "declined":
        act(bob_client, call_id, "decline")
    if setup == "cancelled":
        act(client, call_id, "end")
    if setup in ("missed", "rang out"):
        rang_out(sql, call_id)
    if setup == "missed":
        sweep(app)  # the job records it
    before = status_of(sql, call_id)
    assert before == ("ringing" if setup == "rang out" else setup)
    tab = {"caller": client, "callee": bob_client}.get(who) or login_client(cara)
    response = act(tab, call_id, action)
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert status_of(sql, call_id) == before
    assert states(sql, call_id).get(cara) is None


def test_start_needs_a_call_type(client, sql, chat):
    response = start(client, chat, "hologram")
    assert response.status_code == 422
    assert response.get_json() == {"error": "Choose an audio or a video call.", "field": "type"}
    assert sql.scalar(sa.select(sa.func.count(Call.id))) == 0


# The missed-call timeout


def test_unanswered_call_becomes_missed_on_its_own(app, client, sql, chat, ada, bob):
    """The timer marks it missed with no request at all, and tells both members."""
    app.config["CALL_RING_SECONDS"] = 0.2
    hub = app.extensions["chipper.realtime"].hub
    bob_stream = hub.register(bob)
    call_id = ring(client, chat, "video")
    deadline = time.monotonic() + 5
    while status_of(sql, call_id) != "missed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status_of(sql, call_id) == "missed"
    assert entries(sql, chat) == [("Missed video call", call_id, ada)]
    kinds = []
    while True:
        try:
            kinds.append(bob_stream.get(timeout=0.5)[1].kind)
        except queue.Empty:
            break
    assert kinds == ["call-ringing", "call-ended", "message-created"]


def test_a_call_that_rang_too_long_reads_as_missed_until_the_sweep_records_it(
    app, client, bob_client, sql, chat
):
    """If its job never ran (the process restarted), reads still show it missed without
    writing, and the periodic sweep records it."""
    call_id = ring(client, chat)
    sql.write(
        sa.update(Call)
        .where(Call.id == call_id)
        .values(created_at=utcnow() - timedelta(seconds=46))
    )
    response = act(bob_client, call_id, "answer")
    assert response.status_code == 409
    assert response.get_json()["error"] == "This call is over (missed audio call)."
    assert bob_client.get(f"/calls/{call_id}", headers=JSON).get_json()["call"]["status"] == (
        "missed"
    )
    assert status_of(sql, call_id) == "ringing"
    assert entries(sql, chat) == []
    sweep(app)
    assert status_of(sql, call_id) == "missed"
    assert len(entries(sql, chat)) == 1
    sweep(app)  # once only
    assert len(entries(sql, chat)) == 1


def test_missed_call_counts_as_unread_for_the_callee(app, client, bob_client, sql, chat):
    call_id = ring(client, chat)
    rang_out(sql, call_id)
    sweep(app)
    assert bob_client.get("/conversations/unread", headers=JSON).get_json() == {"unread": 1}
    assert client.get("/conversations/unread", headers=JSON).get_json() == {"unread": 0}
    (row,) = bob_client.get("/conversations", headers=JSON).get_json()["conversations"]
    assert row["last_message"]["body"] == "Missed audio call"
    assert row["last_message"]["call_id"] == call_id
    page = text(bob_client.get(f"/conversations/{chat}"))
    assert 'class="body call-entry"' in page
    assert "Missed audio call" in page


def test_an_answered_call_is_not_unread_for_those_who_took_part(client, bob_client, chat):
    call_id = ring(client, chat)
    assert bob_client.post(f"/calls/{call_id}/answer", headers=JSON).status_code == 200
    assert client.post(f"/calls/{call_id}/end", headers=JSON).status_code == 200
    for someone in (client, bob_client):
        assert someone.get("/conversations/unread", headers=JSON).get_json() == {"unread": 0}
    (row,) = bob_client.get("/conversations", headers=JSON).get_json()["conversations"]
    assert row["last_message"]["body"].startswith("Audio call, 0:0")


# One live call per conversation


def test_second_start_is_refused_for_api_clients(client, bob_client, sql, chat):
    call_id = ring(client, chat)
    response = start(bob_client, chat, "video")
    assert response.status_code == 409
    assert "already going on" in response.get_json()["error"]
    assert sql.scalars(sa.select(Call.id)) == [call_id]


def test_second_start_from_a_browser_joins_the_live_call(client, bob_client, sql, chat, bob):
    call_id = ring(client, chat)
    page = f"/conversations/{chat}"
    response = bob_client.submit(page, f"{page}/calls", {"type": "video"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/calls/{call_id}"
    assert status_of(sql, call_id) == "active"
    assert states(sql, call_id)[bob] == "joined"
    assert sql.scalars(sa.select(Call.id)) == [call_id]


def together(app, prefix: str, *requests) -> list:
    """Runs the requests in threads that all reach their first statement starting with
    `prefix` before any of them runs it; returns their responses in order."""
    both = threading.Barrier(len(requests), timeout=10)
    local = threading.local()

    def wait_for_the_others(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(prefix) and not getattr(local, "done", False):
            local.done = True
            both.wait()

    responses = [None] * len(requests)

    def go(i, request):
        responses[i] = request()

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", wait_for_the_others)
    try:
        threads = [threading.Thread(target=go, args=pair) for pair in enumerate(requests)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sa.event.remove(engine, "before_cursor_execute", wait_for_the_others)
    return responses


def test_two_of_three_hanging_up_at_once_end_the_call(
    make, app, client, login_client, sql, ada, bob, cara
):
    team = make.group(ada, [bob, cara])
    call_id = ring(client, team)
    bob_tab, cara_tab = login_client(bob), login_client(cara)
    act(bob_tab, call_id, "answer")
    act(cara_tab, call_id, "answer")
    responses = together(
        app,
        "UPDATE CALLS ",
        lambda: act(bob_tab, call_id, "end"),
        lambda: act(cara_tab, call_id, "end"),
    )
    assert [r.status_code for r in responses] == [200, 200]
    assert sorted(r.get_json()["status"] for r in responses) == ["active", "ended"]
    assert status_of(sql, call_id) == "ended"
    assert len(entries(sql, team)) == 1


def test_concurrent_starts_make_one_call(app, client, bob_client, sql, chat):
    responses = together(
        app, "INSERT INTO CALLS ", lambda: start(client, chat), lambda: start(bob_client, chat)
    )
    assert sorted(r.status_code for r in responses) == [201, 409]
    assert len(sql.scalars(sa.select(Call.id))) == 1


def test_two_tabs_answering_at_once_join_once(app, client, login_client, sql, chat, bob):
    call_id = ring(client, chat)
    tabs = [login_client(bob), login_client(bob)]
    responses = together(
        app, "UPDATE CALLS ", *[lambda tab=tab: act(tab, call_id, "answer") for tab in tabs]
    )
    assert sorted(r.status_code for r in responses) == [200, 409]
    refused = next(r for r in responses if r.status_code == 409)
    assert refused.get_json()["error"] == (
        "You are already in this call, in another tab or on another device."
    )
    assert status_of(sql, call_id) == "active"
    assert states(sql, call_id)[bob] == "joined"


def test_calls_take_at_most_four_people(make, client, login_client, sql, ada):
    others = [make.user(f"Friend {n}") for n in range(4)]
    team = make.group(ada, others)
    call_id = ring(client, team)
    for uid in others[:3]:
        assert act(login_client(uid), call_id, "answer").status_code == 200
    response = act(login_client(others[3]), call_id, "answer")
    assert response.status_code == 409
    assert response.get_json()["error"] == "This call is full: calls take at most 4 people."
    assert states(sql, call_id)[others[3]] == "invited"


# Pages and forms without JavaScript


def test_call_page_says_media_needs_javascript_and_offers_forms(client, bob_client, chat):
    call_id = ring(client, chat)
    html = text(bob_client.get(f"/calls/{call_id}"))
    assert "Sound and video need JavaScript" in html
    # Each person is offered what is theirs to do: the one being rung answers or declines,
    # the caller (and anyone who answered) hangs up.
    offered = set(re.findall(rf'action="/calls/{call_id}/(\w+)"', html))
    assert offered == {"answer", "decline"}
    caller_page = text(client.get(f"/calls/{call_id}"))
    assert set(re.findall(rf'action="/calls/{call_id}/(\w+)"', caller_page)) == {"end"}
    response = bob_client.submit(f"/calls/{call_id}", f"/calls/{call_id}/answer", {})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/calls/{call_id}"
    answered = text(bob_client.get(f"/calls/{call_id}"))
    assert set(re.findall(rf'action="/calls/{call_id}/(\w+)"', answered)) == {"end"}
    response = bob_client.submit(f"/calls/{call_id}", f"/calls/{call_id}/end", {})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/conversations/{chat}"
    assert "Audio call, 0:0" in text(bob_client.get(f"/conversations/{chat}"))


def test_conversation_page_has_call_buttons(client, chat):
    html = text(client.get(f"/conversations/{chat}"))
    assert f'action="/conversations/{chat}/calls"' in html
    assert 'name="type" value="video"' in html


def test_call_json_carries_the_ice_servers(app, client, chat):
    app.config["ICE_SERVERS"] = [{"urls": "stun:stun.example.org"}]
    call_id = ring(client, chat)
    body = client.get(f"/calls/{call_id}", headers=JSON).get_json()
    assert body["ice_servers"] == [{"urls": "stun:stun.example.org"}]
    assert body["call"]["id"] == call_id


# Who may do what


CALL_ROUTES = [
    ("GET", "/calls/{call}"),
    ("POST", "/calls/{call}/answer"),
    ("POST", "/calls/{call}/decline"),
    ("POST", "/calls/{call}/end"),
    ("POST", "/calls/{call}/signal"),
    ("POST", "/calls/{call}/screen"),
    ("POST", "/conversations/{chat}/calls"),
]


@pytest.mark.parametrize(("method", "path"), CALL_ROUTES)
def test_outsiders_get_404(client, login_client, sql, chat, cara, method, path):
    call_id = ring(client, chat)
    url = path.format(call=call_id, chat=chat)
    response = login_client(cara).open(
        url,
        method=method,
        json={"type": "audio", "to": 1, "data": {}, "sharing": "on"},
        headers=JSON,
    )
    assert response.status_code == 404
    assert status_of(sql, call_id) == "ringing"


# Bodies the signal and screen routes refuse (422) from a member of the call; an outsider is
# told only that there is no such call, whatever the body.
BAD_BODIES = {
    "signal": [
        {"data": "to=2", "content_type": "application/x-www-form-urlencoded"},
        {"json": ["offer"]},
        {"json": {"type": "hello", "to": 2, "data": {}}},
        {"json": {"type": ["offer"], "to": 2, "data": {}}},
        {"json": {"type": "offer", "to": {"id": 2}, "data": {}}},
        {"json": {"type": "offer", "to": 2, "data": {"sdp": ["x"]}}},
    ],
    "screen": [
        {"json": {"sharing": "maybe"}},
        {"json": {"sharing": ["on"]}},
        {"json": {"sharing": {"on": True}}},
        {"json": {"sharing": 1}},
        {"json": ["on"]},
        {"data": {"sharing": "maybe"}},
    ],
}
BAD_REQUESTS = [(route, body) for route, bodies in BAD_BODIES.items() for body in bodies]


@pytest.mark.parametrize(("route", "body"), BAD_REQUESTS)
def test_outsiders_get_404_whatever_they_send(client, login_client, live_call, cara, route, body):
    response = login_client(cara).post(f"/calls/{live_call}/{route}", headers=JSON, **body)
    assert response.status_code == 404
    assert response.get_json()["error"] == "Call not found."


@pytest.mark.parametrize(("route", "body"), BAD_REQUESTS)
def test_members_who_send_a_bad_body_get_422(client, sql, live_call, route, body):
    response = client.post(f"/calls/{live_call}/{route}", headers=JSON, **body)
    assert response.status_code == 422, text(response)
    assert sharing(sql, live_call)[0] is False


@pytest.mark.parametrize(("method", "path"), CALL_ROUTES)
def test_signed_out_visitors_are_sent_to_log_in(app, client, chat, method, path):
    call_id = ring(client, chat)
    anonymous = app.test_client()
    url = path.format(call=call_id, chat=chat)
    response = anonymous.open(url, method=method, json={"type": "audio"}, headers=JSON)
    assert response.status_code == 401
    response = anonymous.open(url, method=method, data={"type": "audio"}, csrf=False)
    if method == "GET":
        assert response.status_code == 303
        assert response.headers["Location"].startswith("/login")
    else:
        assert response.status_code == 400  # no CSRF token: refused before anything else


def test_unknown_call_is_404(client, chat):
    assert client.get("/calls/999", headers=JSON).status_code == 404


# Signaling


@pytest.fixture
def live_call(client, bob_client, chat) -> int:
    call_id = ring(client, chat, "video")
    act(bob_client, call_id, "answer")
    return call_id


def signal(tab, call_id: int, **body):
    return tab.post(f"/calls/{call_id}/signal", json=body, headers=JSON)


# What js/calls/mesh.js sends: RTCSessionDescription.toJSON() and RTCIceCandidate.toJSON() as
# Chromium makes them, and its media state.
OFFER = {"type": "offer", "sdp": "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n"}
CANDIDATE = {
    "candidate": "candidate:842163049 1 udp 1677729535 192.0.2.7 46154 typ srflx generation 0",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "EsXv",
}
GOOD_SIGNALS = {
    "offer": ("offer", OFFER),
    "offer without its type": ("offer", {"sdp": OFFER["sdp"]}),
    "answer": ("answer", ANSWER),
    "candidate": ("candidate", CANDIDATE),
    "end of a generation's candidates": ("candidate", {**CANDIDATE, "candidate": ""}),
    "candidate without mid or index": (
        "candidate",
        {"candidate": CANDIDATE["candidate"], "sdpMid": None, "sdpMLineIndex": None},
    ),
    "end of candidates": ("candidate", None),
    "media": ("media", {"audio": True, "video": False, "screen": False}),
}
BAD_SIGNALS = {
    "offer as a string": ("offer", "v=0", "An offer carries its session description"),
    "offer without sdp": ("offer", {"type": "offer"}, "An offer carries"),
    "offer with a number for sdp": ("offer", {"type": "offer", "sdp": 5}, "An offer carries"),
    "answer sent as an offer": ("offer", ANSWER, "An offer carries"),
    "offer sent as an answer": ("answer", OFFER, "An answer carries"),
    "offer of nothing": ("offer", None, "An offer carries"),
    "candidate as a string": ("candidate", CANDIDATE["candidate"], "A candidate carries"),
    "candidate without candidate": ("candidate", {"sdpMid": "0"}, "A candidate carries"),
    "candidate with a number for mid": ("candidate", {**CANDIDATE, "sdpMid": 0}, "A candidate"),
    "candidate with a string index": (
        "candidate",
        {**CANDIDATE, "sdpMLineIndex": "0"},
        "A candidate carries",
    ),
    "candidate with a boolean index": (
        "candidate",
        {**CANDIDATE, "sdpMLineIndex": True},
        "A candidate carries",
    ),
    "media with a string": ("media", {"audio": "on"}, "A media signal says what"),
    "media with a number": ("media", {"video": 1}, "A media signal says what"),
    "media with another field": ("media", {"audio": True, "html": True}, "A media signal"),
    "media as a list": ("media", [True], "A media signal says what"),
    "media of nothing": ("media", None, "A media signal says what"),
}


@pytest.mark.parametrize(("kind", "data"), GOOD_SIGNALS.values(), ids=GOOD_SIGNALS)
def test_each_kind_of_signal_is_relayed(app, client, live_call, bob, kind, data):
    stream = app.extensions["chipper.realtime"].hub.register(bob)
    assert signal(client, live_call, to=bob, type=kind, data=data).status_code == 204
    assert stream.get(timeout=1)[1].data["data"] == data


@pytest.mark.parametrize(("kind", "data", "message"), BAD_SIGNALS.values(), ids=BAD_SIGNALS)
def test_signals_of_the_wrong_shape_are_refused(app, client, live_call, bob, kind, data, message):
    stream = app.extensions["chipper.realtime"].hub.register(bob)
    response = signal(client, live_call, to=bob, type=kind, data=data)
    assert response.status_code == 422
    body = response.get_json()
    assert body["field"] == "data"
    assert body["error"].startswith(message)
    with pytest.raises(queue.Empty):
        stream.get(timeout=0.05)


def test_signal_reaches_only_the_addressee(app, client, live_call, ada, bob, cara):
    hub = app.extensions["chipper.realtime"].hub
    streams = {uid: hub.register(uid) for uid in (ada, bob, cara)}
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    response = signal(client, live_call, to=bob, type="offer", data=offer)
    assert response.status_code == 204
    seq, envelope = streams[bob].get(timeout=1)
    assert seq is None  # live only, never stored
    assert envelope.kind == "call-signal"
    assert envelope.recipients == [bob]
    assert envelope.data == {"call_id": live_call, "from": ada, "type": "offer", "data": offer}
    for uid in (ada, cara):
        with pytest.raises(queue.Empty):
            streams[uid].get(timeout=0.05)


def test_caller_may_signal_a_callee_whose_phone_is_ringing(app, client, chat, bob):
    call_id = ring(client, chat, "video")
    stream = app.extensions["chipper.realtime"].hub.register(bob)
    assert signal(client, call_id, to=bob, type="offer", data=OFFER).status_code == 204
    assert stream.get(timeout=1)[1].data["data"] == OFFER


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "hello", "data": {}}, "type"),
        ({"type": "offer", "data": None}, "data"),
        ({"type": "offer", "data": 5}, "data"),
        ({"type": "offer", "data": {"type": "offer", "sdp": "x" * (64 * 1024)}}, "data"),
        ({"type": "offer", "to": "bob", "data": {}}, "to"),
        ({"type": "offer", "to": True, "data": {}}, "to"),
    ],
)
def test_bad_signals_are_refused(client, live_call, bob, body, field):
    body.setdefault("to", bob)
    response = signal(client, live_call, **body)
    assert response.status_code == 422
    assert response.get_json()["field"] == field


def test_signal_body_must_be_json(client, live_call):
    response = client.post(f"/calls/{live_call}/signal", data="to=2", headers=JSON)
    assert response.status_code == 422


def test_a_signal_to_someone_who_just_left_is_dropped(make, client, login_client, ada, bob, cara):
    """In a call of three, a candidate still on its way to one who hung up is no error (the
    page would show one): it is dropped."""
    team = make.group(ada, [bob, cara])
    call_id = ring(client, team)
    bobs, caras = login_client(bob), login_client(cara)
    for tab in (bobs, caras):
        assert act(tab, call_id, "answer").status_code == 200
    assert act(caras, call_id, "end").status_code == 200
    assert signal(client, call_id, to=cara, type="candidate", data=None).status_code == 204
    assert signal(client, call_id, to=bob, type="offer", data=OFFER).status_code == 204
    # Nor one from her, sent by her page as it closed (the three-people browser test saw a
    # 403 for it once).
    assert signal(caras, call_id, to=ada, type="candidate", data=None).status_code == 204


def test_cannot_signal_someone_outside_the_call(make, client, login_client, sql, ada, bob, cara):
    team = make.group(ada, [bob])
    call_id = ring(client, team)
    # Cara joins the group after the call started ringing, so it never rang for her.
    response = client.post(
        f"/conversations/{team}/participants", json={"user_ids": [cara]}, headers=JSON
    )
    assert response.status_code == 201
    for to in (cara, ada, 999):
        response = signal(client, call_id, to=to, type="offer", data=OFFER)
        assert response.status_code == 422, to
        assert response.get_json()["error"] == "That person is not in this call."
    # She can still join it, and then be signaled.
    assert act(login_client(cara), call_id, "answer").status_code == 200
    assert states(sql, call_id)[cara] == "joined"
    assert signal(client, call_id, to=cara, type="offer", data=OFFER).status_code == 204


def test_only_people_in_the_call_may_signal(client, bob_client, chat, ada):
    call_id = ring(client, chat)
    response = signal(bob_client, call_id, to=ada, type="answer", data=ANSWER)
    assert response.status_code == 403
    assert response.get_json()["error"] == "Join the call before signaling."
    act(client, call_id, "end")
    response = signal(client, call_id, to=ada, type="offer", data=OFFER)
    assert response.status_code == 409


# Over real streams (gunicorn with gevent workers, Redis, an SSE client)


def test_ringing_and_signals_arrive_over_real_streams(make, visit, live, ada, bob, cara):
    team = make.group(ada, [bob, cara])
    ada_v, bob_v, cara_v = visit(ada), visit(bob), visit(cara)
    bob_html, bob_json = bob_v.stream(), bob_v.stream(params={"format": "json"})
    cara_json = cara_v.stream(params={"format": "json"})
    response = ada_v.request("POST", f"/conversations/{team}/calls", json={"type": "video"})
    assert response.status_code == 201, response.text
    call_id = response.json()["id"]
    ringing = wait_for(bob_html, lambda e: e.name == f"call-ringing-{team}")
    assert ringing.id is not None  # stored, so a reconnecting tab still sees it
    assert f'id="call-{call_id}"' in ringing.data
    # Every page also gets it as one `call` frame, which rings wherever Bob is.
    generic = wait_for(bob_html, lambda e: e.name == "call")
    assert generic.id == ringing.id
    assert generic.json()["id"] == call_id
    assert generic.json()["status"] == "ringing"
    assert [m["state"] for m in generic.json()["members"]] == ["joined", "invited", "invited"]

    response = ada_v.request(
        "POST", f"/calls/{call_id}/signal", json={"to": bob, "type": "offer", "data": OFFER}
    )
    assert response.status_code == 204, response.text
    event = wait_for(bob_json, lambda e: e.name == "call-signal")
    assert event.id is None
    page_event = wait_for(bob_html, lambda e: e.name == "call-signal")
    assert page_event.json() == {"call_id": call_id, "from": ada, "type": "offer", "data": OFFER}
    assert event.json() == {
        "conversation_id": team,
        "call_id": call_id,
        "from": ada,
        "type": "offer",
        "data": OFFER,
    }
    # Whatever reached Cara before this later message would be there by now.
    message = ada_v.send(team, "sync")
    wait_for(cara_json, lambda e: e.name == "message-created" and e.json()["id"] == message["id"])
    assert not [e for e in cara_json.events if e.name == "call-signal"]


def test_a_running_server_marks_an_unanswered_call_missed(make, start_server, visit, ada, bob):
    server = start_server(CALL_RING_SECONDS="0.5")
    chat = make.private(ada, bob)
    ada_v, bob_v = visit(ada, server), visit(bob, server)
    bob_json = bob_v.stream(params={"format": "json"})
    response = ada_v.request("POST", f"/conversations/{chat}/calls", json={"type": "audio"})
    assert response.status_code == 201, response.text
    ended = wait_for(bob_json, lambda e: e.name == "call-ended")
    assert ended.json()["status"] == "missed"
    entry = wait_for(bob_json, lambda e: e.name == "message-created")
    assert entry.json()["body"] == "Missed audio call"


def test_htmx_gets_the_call_partial(client, bob_client, chat):
    call_id = ring(client, chat)
    response = bob_client.post(f"/calls/{call_id}/answer", headers=HTMX)
    assert response.status_code == 200
    html = text(response)
    assert html.startswith(f'<div class="call call-active" id="call-{call_id}"')
    assert "Audio call in progress" in html
    assert 'name="csrf_token"' in html


def test_caller_starting_again_goes_back_to_the_live_call(client, sql, chat):
    call_id = ring(client, chat)
    page = f"/conversations/{chat}"
    response = client.submit(page, f"{page}/calls", {"type": "audio"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/calls/{call_id}"
    assert status_of(sql, call_id) == "ringing"


def test_conversation_page_shows_the_live_call_with_its_forms(client, bob_client, chat):
    call_id = ring(client, chat, "video")
    html = text(bob_client.get(f"/conversations/{chat}"))
    assert f'id="call-{call_id}"' in html
    assert "Video call ringing" in html
    assert f'action="/calls/{call_id}/decline"' in html
    response = bob_client.submit(f"/conversations/{chat}", f"/calls/{call_id}/decline", {})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/conversations/{chat}"
    html = text(bob_client.get(f"/conversations/{chat}"))
    assert f'id="call-{call_id}"' not in html
    assert "Declined video call" in html


# Screen sharing


def sharing(sql, call_id: int) -> tuple[bool, dict[int, bool]]:
    call = sql.scalar(sa.select(Call.screen_sharing).where(Call.id == call_id))
    members = sql.rows(
        sa.select(CallMember.user_id, CallMember.screen_sharing).where(
            CallMember.call_id == call_id
        )
    )
    return call, dict(members)


def test_sharing_the_screen_is_shown_to_the_others(app, client, sql, live_call, ada, bob):
    hub = app.extensions["chipper.realtime"].hub
    bob_stream = hub.register(bob)
    response = client.post(f"/calls/{live_call}/screen", json={"sharing": "on"}, headers=JSON)
    assert response.status_code == 200
    assert response.get_json()["screen_sharing"] is True
    assert sharing(sql, live_call) == (True, {ada: True, bob: False})
    _, envelope = bob_stream.get(timeout=1)
    assert envelope.kind == "call-updated"
    assert 'data-screen-sharing="on"' in envelope.html
    assert "Ada · sharing their screen" in envelope.html
    response = client.post(f"/calls/{live_call}/screen", json={"sharing": False}, headers=JSON)
    assert response.get_json()["screen_sharing"] is False
    assert sharing(sql, live_call) == (False, {ada: False, bob: False})


def test_hanging_up_stops_your_screen_sharing(make, client, login_client, sql, ada, bob, cara):
    team = make.group(ada, [bob, cara])
    call_id = ring(client, team, "video")
    bob_tab, cara_tab = login_client(bob), login_client(cara)
    act(bob_tab, call_id, "answer")
    act(cara_tab, call_id, "answer")
    bob_tab.post(f"/calls/{call_id}/screen", json={"sharing": "on"}, headers=JSON)
    assert sharing(sql, call_id)[0] is True
    act(bob_tab, call_id, "end")
    assert sharing(sql, call_id) == (False, {ada: False, bob: False, cara: False})


def test_screen_sharing_from_the_page_without_javascript(client, live_call):
    page = f"/calls/{live_call}"
    response = client.submit(page, f"{page}/screen", {"sharing": "on"})
    assert response.status_code == 303
    assert response.headers["Location"] == page
    assert "Ada · sharing their screen" in text(client.get(page))


@pytest.mark.parametrize("value", ["", "maybe", "1"])
def test_screen_sharing_needs_on_or_off(client, sql, live_call, value):
    response = client.post(f"/calls/{live_call}/screen", json={"sharing": value}, headers=JSON)
    assert response.status_code == 422
    assert response.get_json()["error"] == "Say whether you are sharing your screen: on or off."
    assert sharing(sql, live_call)[0] is False


def test_only_people_in_an_answered_call_share_screens(client, bob_client, sql, chat):
    call_id = ring(client, chat, "video")
    for tab in (client, bob_client):  # ringing: nothing to show yet; Bob is not in it
        response = tab.post(f"/calls/{call_id}/screen", json={"sharing": "on"}, headers=JSON)
        assert response.status_code == 409
    assert sharing(sql, call_id)[0] is False


# Ringing on every page


def test_every_page_shows_a_call_ringing_for_you(make, client, bob_client, chat, cara):
    call_id = ring(client, chat, "video")
    for page in ("/conversations", "/conversations/new", f"/conversations/{chat}"):
        html = text(bob_client.get(page))
        assert f'id="ringing-{call_id}"' in html, page
        assert "<strong>Ada</strong> is calling you: video call" in html
    # Not for the caller, nor for someone outside the conversation.
    assert f'id="ringing-{call_id}"' not in text(client.get("/conversations"))
    # Answering from it without JavaScript goes to the call; then it stops ringing.
    response = bob_client.submit("/conversations", f"/calls/{call_id}/answer", {})
    assert response.headers["Location"] == f"/calls/{call_id}"
    assert f'id="ringing-{call_id}"' not in text(bob_client.get("/conversations"))


def test_the_ringing_boxes_come_from_the_server_for_the_page_to_place(
    app, client, bob_client, login_client, chat, cara
):
    # What the page fetches when the stream says a call rings: the same boxes, with this
    # viewer's CSRF token in their forms, never cached.
    assert text(bob_client.get("/calls/ringing")).strip() == ""
    call_id = ring(client, chat, "video")
    response = bob_client.get("/calls/ringing")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = text(response)
    assert f'id="ringing-{call_id}"' in html
    assert "<strong>Ada</strong> is calling you: video call" in html
    assert f'action="/calls/{call_id}/answer"' in html and 'name="csrf_token"' in html
    # It rings until the server's time says so.
    assert re.search(r'data-rings-until="[0-9T:.-]+(Z|\+00:00)"', html)
    body = bob_client.get("/calls/ringing", headers=JSON).get_json()
    assert [c["id"] for c in body["calls"]] == [call_id]
    # Not for the caller, nor for someone outside the conversation, nor once answered.
    assert "ringing-" not in text(client.get("/calls/ringing"))
    assert "ringing-" not in text(login_client(cara).get("/calls/ringing"))
    act(bob_client, call_id, "answer")
    assert "ringing-" not in text(bob_client.get("/calls/ringing"))


def test_a_group_call_says_where_it_rings(make, client, login_client, ada, bob, cara):
    team = make.group(ada, [bob, cara], name="Climbing")
    call_id = ring(client, team)
    html = text(login_client(cara).get("/conversations"))
    assert "is calling you: audio call in Climbing" in html
    body = client.get(f"/calls/{call_id}", headers=JSON).get_json()
    assert body["call"]["conversation_name"] == "Climbing"


def test_a_page_does_not_ring_for_a_call_that_rang_too_long(app, client, bob_client, sql, chat):
    call_id = ring(client, chat)
    app.config["CALL_RING_SECONDS"] = 0
    assert f'id="ringing-{call_id}"' not in text(bob_client.get("/conversations"))
    page = text(bob_client.get(f"/conversations/{chat}"))
    assert f'id="call-{call_id}"' not in page  # no live call to show
    # Reading wrote nothing: the timeout's job records it.
    assert status_of(sql, call_id) == "ringing"
    sweep(app)
    assert status_of(sql, call_id) == "missed"


def test_in_an_answered_group_call_the_ringing_stops_for_those_who_did_not_answer(
    app, make, client, login_client, sql, ada, bob, cara
):
    team = make.group(ada, [bob, cara])
    call_id = ring(client, team, "video")
    bob_tab, cara_tab = login_client(bob), login_client(cara)
    act(bob_tab, call_id, "answer")
    hub = app.extensions["chipper.realtime"].hub
    cara_stream = hub.register(cara)
    app.config["CALL_RING_SECONDS"] = 0
    assert f'id="ringing-{call_id}"' not in text(cara_tab.get("/conversations"))
    body = cara_tab.get(f"/calls/{call_id}", headers=JSON).get_json()["call"]
    assert {m["user_id"]: m["state"] for m in body["members"]}[cara] == "left"
    assert states(sql, call_id)[cara] == "invited"  # computed by the read, not written
    sweep(app)
    assert states(sql, call_id) == {ada: "joined", bob: "joined", cara: "left"}
    assert status_of(sql, call_id) == "active"
    _, envelope = cara_stream.get(timeout=1)
    assert envelope.kind == "call-updated"
    assert "Cara · no answer" in envelope.html
    # She can still come in.
    assert act(cara_tab, call_id, "answer").status_code == 200
    assert states(sql, call_id)[cara] == "joined"


def test_the_timer_stops_the_ringing_in_an_answered_group_call(
    app, make, client, login_client, sql, ada, bob, cara
):
    app.config["CALL_RING_SECONDS"] = 0.3
    team = make.group(ada, [bob, cara])
    call_id = ring(client, team)
    act(login_client(bob), call_id, "answer")
    deadline = time.monotonic() + 5
    while states(sql, call_id)[cara] == "invited" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert states(sql, call_id)[cara] == "left"
    assert status_of(sql, call_id) == "active"


def test_media_signals_are_relayed(app, client, live_call, bob):
    hub = app.extensions["chipper.realtime"].hub
    bob_stream = hub.register(bob)
    state = {"audio": False, "video": True, "screen": False}
    assert signal(client, live_call, to=bob, type="media", data=state).status_code == 204
    _, envelope = bob_stream.get(timeout=1)
    assert envelope.data["type"] == "media"
    assert envelope.data["data"] == state
