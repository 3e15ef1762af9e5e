"""A property-based test: Hypothesis drives random sequences of what people do (send, delete,
start chats and groups, add members, leave, open a conversation, be deactivated and come back)
through the JSON API, next to a small model in Python of what each person should see.

After every step the app must agree with the model: each person's conversation list (order,
members, last message, unread counts), every history page of the conversations the step
touched, 404 for outsiders, 401 for deactivated accounts, the messages and participants
tables, and the events each person's stream was handed (exactly those the model predicts).
"""

import sys
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from chipper.models import Message, Participant
from tests.conftest import JSON, PASSWORD, _empty_tables

USERS = 4  # the first one registered is the server's admin (and takes part like the others)
PAGE = 3  # messages per history page, so a few messages already need keyset paging
NEWEST = 2**31 - 1  # a `before` above every id: the newest page, without marking it read
# Stripped before they are stored; the blank one is refused.
BODY = st.sampled_from(["hi", "  see you  ", "ok\nbye", "  "])

SETTINGS = settings(
    max_examples=30,
    stateful_step_count=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class Conv:
    id: int
    kind: str
    members: set[int]
    activity: int  # when it last moved up the lists (a tick of the model's clock)
    messages: list[int] = field(default_factory=list)


@dataclass
class Msg:
    id: int
    conversation_id: int
    author: int
    body: str
    deleted: bool = False


class Chat(RuleBasedStateMachine):
    """One example: fresh tables, four signed-in people, each with a stream on the hub."""

    def __init__(self, app, make, login_client):
        super().__init__()
        self.app, self.make, self.login_client = app, make, login_client
        with app.app_context():
            _empty_tables()
        self.users = [make.user(f"P{i}") for i in range(USERS)]
        self.admin = self.users[0]
        self.clients = {uid: login_client(uid) for uid in self.users}
        self.hub = app.extensions["chipper.realtime"].hub
        self.streams = {uid: self.hub.register(uid) for uid in self.users}
        self.active = dict.fromkeys(self.users, True)
        self.convs: dict[int, Conv] = {}
        self.msgs: dict[int, Msg] = {}
        self.read_upto: dict[tuple[int, int], int] = {}  # (user, conversation) -> message id
        self.expected: dict[int, list[tuple]] = {uid: [] for uid in self.users}
        self.touched: set[int] = set()
        # What each person's list was last checked against (the model's list and whether the
        # account was active).
        self.checked: dict[int, tuple] = {}
        self.clock = 0

    def teardown(self):
        try:
            # The example ran to its end: every list once more, changed or not.
            if sys.exc_info()[0] is None:
                self.check_lists(self.users)
        finally:
            for stream in self.streams.values():
                self.hub.unregister(stream)

    # The model's helpers

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def tell(self, recipients, kind: str, cid: int | None, key=None) -> None:
        for uid in recipients:
            self.expected[uid].append((kind, cid, key))

    def unread(self, uid: int, conv: Conv) -> int:
        upto = self.read_upto.get((uid, conv.id), 0)
        return sum(
            1
            for mid in conv.messages
            if not self.msgs[mid].deleted and self.msgs[mid].author != uid and mid > upto
        )

    def history(self, conv: Conv) -> list[tuple]:
        return [
            (m.id, m.author, "" if m.deleted else m.body, m.deleted)
            for m in (self.msgs[mid] for mid in conv.messages)
        ]

    def listed(self, uid: int) -> list[tuple]:
        mine = [c for c in self.convs.values() if uid in c.members]
        mine.sort(key=lambda c: (c.activity, c.id), reverse=True)
        return [
            (c.id, sorted(c.members), c.messages[-1] if c.messages else None, self.unread(uid, c))
            for c in mine
        ]

    def refused_while_deactivated(self, uid: int, response) -> bool:
        """A deactivated account gets 401 whatever it tries; True when that was the case."""
        if self.active[uid]:
            return False
        assert response.status_code == 401, response.get_data(as_text=True)
        return True

    def user(self, data, who="actor") -> int:
        return data.draw(st.sampled_from(self.users), label=who)

    def conversation(self, data, who="conversation") -> Conv:
        return self.convs[data.draw(st.sampled_from(sorted(self.convs)), label=who)]

    def usually(self, data, likely: set[int], who="actor") -> int:
        """Someone from `likely` three times in four (a member, the author), else anyone:
        refusals are worth trying, but most steps should change something."""
        if likely and data.draw(st.integers(0, 3), label=f"{who} is likely"):
            return data.draw(st.sampled_from(sorted(likely)), label=who)
        return self.user(data, who)

    # What people do

    @initialize()
    def everyone_in_a_group(self):
        """A group of all of them to start with, so the first steps already have somewhere to
        talk."""
        response = self.clients[self.admin].post(
            "/conversations",
            json={"type": "group", "name": "All", "user_ids": self.users[1:]},
            headers=JSON,
        )
        assert response.status_code == 201
        cid = response.get_json()["id"]
        self.convs[cid] = Conv(cid, "group", set(self.users), self.tick())
        self.tell(self.users, "conversation-created", cid)
        self.touched.add(cid)

    @rule(data=st.data())
    def create_group(self, data):
        actor = self.user(data)
        others = data.draw(st.sets(st.sampled_from(self.users), max_size=USERS), label="others")
        response = self.clients[actor].post(
            "/conversations",
            json={"type": "group", "name": "Team", "user_ids": sorted(others)},
            headers=JSON,
        )
        if self.refused_while_deactivated(actor, response):
            return
        if not others - {actor}:
            assert response.status_code == 422
            assert response.get_json()["field"] == "user_ids"
            return
        assert response.status_code == 201, response.get_data(as_text=True)
        cid = response.get_json()["id"]
        assert cid not in self.convs
        self.convs[cid] = Conv(cid, "group", others | {actor}, self.tick())
        self.tell(others | {actor}, "conversation-created", cid)
        self.touched.add(cid)

    @rule(data=st.data())
    def start_private(self, data):
        actor, other = self.user(data), self.user(data, "other")
        response = self.clients[actor].post(
            "/conversations", json={"type": "private", "user_ids": [other]}, headers=JSON
        )
        if self.refused_while_deactivated(actor, response):
            return
        if actor == other:
            assert response.status_code == 422
            return
        existing = [
            c for c in self.convs.values() if c.kind == "private" and c.members == {actor, other}
        ]
        cid = response.get_json()["id"]
        if existing:
            # Starting it again opens the same one and changes nothing.
            assert (response.status_code, cid) == (200, existing[0].id)
            return
        assert response.status_code == 201
        self.convs[cid] = Conv(cid, "private", {actor, other}, self.tick())
        self.tell({actor, other}, "conversation-created", cid)
        self.touched.add(cid)

    @precondition(lambda self: self.convs)
    @rule(data=st.data())
    def send(self, data):
        conv = self.conversation(data)
        self.send_as(self.usually(data, conv.members), conv, data.draw(BODY, label="body"))

    @precondition(lambda self: self.convs)
    @rule(data=st.data())
    def reply(self, data):
        """Someone answers in the latest conversation: talk keeps going where it is."""
        conv = max(self.convs.values(), key=lambda c: (c.activity, c.id))
        self.send_as(self.usually(data, conv.members), conv, data.draw(BODY, label="body"))

    def send_as(self, actor: int, conv: Conv, body: str) -> None:
        response = self.clients[actor].post(
            f"/conversations/{conv.id}/messages", json={"body": body}, headers=JSON
        )
        if self.refused_while_deactivated(actor, response):
            return
        if actor not in conv.members:
            assert response.status_code == 404
            return
        if not body.strip():
            assert response.status_code == 422
            return
        assert response.status_code == 201, response.get_data(as_text=True)
        sent = response.get_json()
        assert (sent["user_id"], sent["body"]) == (actor, body.strip())
        self.msgs[sent["id"]] = Msg(sent["id"], conv.id, actor, body.strip())
        conv.messages.append(sent["id"])
        conv.activity = self.tick()
        # What you send, you have read.
        self.read_upto[actor, conv.id] = sent["id"]
        self.tell(conv.members, "message-created", conv.id, sent["id"])
        self.touched.add(conv.id)

    @precondition(lambda self: self.msgs)
    @rule(data=st.data())
    def delete(self, data):
        msg = self.msgs[data.draw(st.sampled_from(sorted(self.msgs)), label="message")]
        actor = self.usually(data, {msg.author})
        conv = self.convs[msg.conversation_id]
        response = self.clients[actor].delete(f"/messages/{msg.id}", headers=JSON)
        if self.refused_while_deactivated(actor, response):
            return
        if actor not in conv.members:
            assert response.status_code == 404
            return
        if actor != msg.author:
            assert response.status_code == 403
            return
        assert response.status_code == 200
        assert response.get_json()["deleted"] is True
        if not msg.deleted:  # deleting it again is answered the same and changes nothing
            msg.deleted = True
            self.tell(conv.members, "message-deleted", conv.id, msg.id)
        self.touched.add(conv.id)

    @precondition(lambda self: self.convs)
    @rule(data=st.data())
    def add_member(self, data):
        conv = self.conversation(data)
        actor = self.usually(data, conv.members)
        new = self.usually(data, set(self.users) - conv.members, "new")
        response = self.clients[actor].post(
            f"/conversations/{conv.id}/participants", json={"user_ids": [new]}, headers=JSON
        )
        if self.refused_while_deactivated(actor, response):
            return
        if actor not in conv.members:
            assert response.status_code == 404
            return
        if conv.kind == "private":
            assert response.status_code == 403
            return
        assert response.status_code == 201
        if new not in conv.members:
            conv.members.add(new)
            # A new member starts with nothing read: the whole history is new to them.
            self.read_upto.pop((new, conv.id), None)
            self.tell(conv.members, "conversation-updated", conv.id)
        participants = {p["id"] for p in response.get_json()["participants"]}
        assert participants == conv.members
        self.touched.add(conv.id)

    @precondition(lambda self: self.convs)
    @rule(data=st.data())
    def leave(self, data):
        conv = self.conversation(data)
        actor = self.usually(data, conv.members)
        response = self.clients[actor].delete(
            f"/conversations/{conv.id}/participants/{actor}", headers=JSON
        )
        if self.refused_while_deactivated(actor, response):
            return
        if actor not in conv.members:
            assert response.status_code == 404
            return
        if conv.kind == "private":
            assert response.status_code == 403
            return
        assert response.status_code == 204, response.get_data(as_text=True)
        conv.members.discard(actor)
        self.read_upto.pop((actor, conv.id), None)
        self.tell([actor], "conversation-removed", conv.id, actor)
        self.tell(conv.members, "conversation-updated", conv.id)
        self.touched.add(conv.id)

    @precondition(lambda self: self.convs)
    @rule(data=st.data())
    def open_conversation(self, data):
        conv = self.conversation(data)
        self.open_as(self.usually(data, conv.members), conv)

    @precondition(lambda self: self.convs)
    @rule(data=st.data())
    def catch_up(self, data):
        """Someone opens the latest conversation, where the news is."""
        conv = max(self.convs.values(), key=lambda c: (c.activity, c.id))
        self.open_as(self.usually(data, conv.members), conv)

    def open_as(self, actor: int, conv: Conv) -> None:
        """Opening a conversation shows its newest page and marks everything read."""
        response = self.clients[actor].get(f"/conversations/{conv.id}", headers=JSON)
        if self.refused_while_deactivated(actor, response):
            return
        if actor not in conv.members:
            assert response.status_code == 404
            return
        assert response.status_code == 200
        body = response.get_json()
        assert [shown(m) for m in body["messages"]] == self.history(conv)[-PAGE:]
        assert body["has_more"] == (len(conv.messages) > PAGE)
        newest = conv.messages[-1] if conv.messages else None
        if newest is not None and newest > self.read_upto.get((actor, conv.id), 0):
            self.read_upto[actor, conv.id] = newest
            self.tell([actor], "read", conv.id)
            # The others' pages fetch their "Seen" line again (read receipts are on).
            others = [uid for uid in conv.members if uid != actor]
            if others:
                self.tell(others, "conversation-read", conv.id)

    @rule(data=st.data())
    def deactivate(self, data):
        target = data.draw(st.sampled_from(self.users[1:]), label="target")
        response = self.clients[self.admin].post(f"/admin/users/{target}/deactivate", headers=JSON)
        assert response.status_code == 200
        assert response.get_json()["user"]["active"] is False
        if self.active[target]:
            self.active[target] = False
            # Their sign-in ends, and with it their open streams.
            self.tell([target], "sessions-ended", None)
        again = self.login_attempt(target)
        assert again.status_code == 401

    @precondition(lambda self: not all(self.active.values()))
    @rule(data=st.data())
    def reactivate(self, data):
        target = data.draw(
            st.sampled_from([uid for uid, on in self.active.items() if not on]), label="target"
        )
        response = self.clients[self.admin].post(f"/admin/users/{target}/reactivate", headers=JSON)
        assert response.status_code == 200
        assert response.get_json()["user"]["active"] is True
        # The old sign-in stays ended: they sign in again.
        assert self.clients[target].get("/conversations", headers=JSON).status_code == 401
        self.active[target] = True
        self.clients[target] = self.login_client(target)

    def login_attempt(self, uid: int):
        return self.app.test_client().post(
            "/login", json={"email": self.make.email(uid), "password": PASSWORD}, headers=JSON
        )

    # What everyone must see after every step

    @invariant()
    def lists_and_unread_counts_match(self):
        """The lists the step changed in the model, each time; the others once more at the end
        of the example (the teardown): a list that changed where the model's did not is
        still wrong then, and asking for all four after every step was a third of the test."""
        changed = [uid for uid in self.users if self.checked.get(uid) != self.view(uid)]
        self.check_lists(changed)

    def view(self, uid: int) -> tuple:
        return (self.listed(uid), self.active[uid])

    def check_lists(self, uids) -> None:
        for uid in uids:
            self.checked[uid] = self.view(uid)
            response = self.clients[uid].get("/conversations", headers=JSON)
            if self.refused_while_deactivated(uid, response):
                continue
            assert response.status_code == 200
            listed = [
                (
                    c["id"],
                    sorted(p["id"] for p in c["participants"]),
                    c["last_message"]["id"] if c["last_message"] else None,
                    c["unread_count"],
                )
                for c in response.get_json()["conversations"]
            ]
            assert listed == self.listed(uid), f"user {uid}"
            total = self.clients[uid].get("/conversations/unread", headers=JSON).get_json()
            assert total == {"unread": sum(row[3] for row in listed)}

    @invariant()
    def touched_histories_match(self):
        """Every page of a changed conversation, for its members; 404 for everyone else."""
        for cid in sorted(self.touched):
            conv = self.convs[cid]
            for uid in self.users:
                if not self.active[uid]:
                    continue
                if uid not in conv.members:
                    for path in (f"/conversations/{cid}", f"/conversations/{cid}/messages"):
                        assert self.clients[uid].get(path, headers=JSON).status_code == 404
                    continue
                assert self.pages(uid, cid) == self.history(conv), f"user {uid}"
        self.touched.clear()

    def pages(self, uid: int, cid: int) -> list[tuple]:
        """The whole history, newest page first, walking back by keyset."""
        seen: list[tuple] = []
        before = NEWEST
        while True:
            response = self.clients[uid].get(
                f"/conversations/{cid}/messages", query_string={"before": before}, headers=JSON
            )
            assert response.status_code == 200
            body = response.get_json()
            assert len(body["messages"]) <= PAGE
            seen[:0] = [shown(m) for m in body["messages"]]
            if not body["has_more"]:
                return seen
            before = body["messages"][0]["id"]

    @invariant()
    def database_matches(self):
        sql = self.app.extensions["sqlalchemy"]
        with self.app.app_context():
            stored = sql.session.execute(
                sa.select(
                    Message.id, Message.conversation_id, Message.user_id, Message.deleted_at
                ).order_by(Message.id)
            ).all()
            members = set(
                sql.session.execute(sa.select(Participant.conversation_id, Participant.user_id))
            )
        assert [(m, c, u, d is not None) for m, c, u, d in stored] == [
            (m.id, m.conversation_id, m.author, m.deleted) for m in self.msgs.values()
        ]
        assert members == {(c.id, uid) for c in self.convs.values() for uid in c.members}

    @invariant()
    def streams_got_what_the_model_predicts(self):
        """Exactly the predicted events, in order: nothing from conversations they are not in."""
        for uid, stream in self.streams.items():
            got = []
            while stream.items:
                _, envelope = stream.items.popleft()
                key = envelope.data.get("id") if envelope.kind.startswith("message-") else None
                if envelope.kind == "conversation-removed":
                    key = envelope.data["removed_user_id"]
                got.append((envelope.kind, envelope.conversation_id, key))
            assert got == self.expected[uid], f"user {uid}"
            self.expected[uid] = []


def shown(message: dict) -> tuple:
    return (message["id"], message["user_id"], message["body"], message["deleted"])


@pytest.fixture
def app_config() -> dict:
    return {"MESSAGES_PER_PAGE": PAGE}


@pytest.mark.long
def test_what_everyone_sees_follows_the_model(app, make, login_client):
    run_state_machine_as_test(lambda: Chat(app, make, login_client), settings=SETTINGS)
