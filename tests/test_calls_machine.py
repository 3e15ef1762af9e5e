"""The calls package's parts on their own: the guarded transition, the ring timeout computed
by reads (which write nothing) and recorded by the scheduler's jobs, after their commit."""

import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from chipper.extensions import db
from chipper.jobs import name_of, scheduler_of
from chipper.models import Call, CallMember, Message, iso, utcnow
from chipper.realtime import events
from chipper.services import Conflict
from chipper.services.calls import machine, ringing
from tests.conftest import JSON, text

CALL_TABLES = ("calls", "call_participants", "messages")


@pytest.fixture
def chat(make, ada, bob) -> int:
    return make.private(ada, bob)


def ring(client, conversation_id: int) -> int:
    response = client.post(
        f"/conversations/{conversation_id}/calls", json={"type": "audio"}, headers=JSON
    )
    assert response.status_code == 201, text(response)
    return response.get_json()["id"]


def row(sql, call_id: int) -> tuple:
    return sql.rows(
        sa.select(Call.status, Call.updated_at, Call.live_conversation_id).where(Call.id == call_id)
    )[0]


def call_messages(sql, chat: int) -> list[str]:
    return sql.scalars(
        sa.select(Message.body).where(Message.conversation_id == chat, Message.type == "call")
    )


@pytest.fixture
def writes(app):
    """The INSERT, UPDATE and DELETE statements run on the call tables while the test runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if re.match(r"\s*(INSERT|UPDATE|DELETE)\b", statement, re.I) and any(
            re.search(rf"\b{table}\b", statement) for table in CALL_TABLES
        ):
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def published(app, monkeypatch, sql):
    """What the jobs publish, each with the call statuses the database held at that moment
    (read on a connection of its own, so only what was committed)."""
    seen: list[tuple[str, list[str]]] = []

    def publish(*envelopes):
        statuses = sql.scalars(sa.select(Call.status).order_by(Call.id))
        seen.extend((envelope.kind, statuses) for envelope in envelopes)

    monkeypatch.setattr(events, "publish", publish)
    return seen


# transition()


def test_an_allowed_transition_changes_the_row(app, client, sql, chat):
    call_id = ring(client, chat)
    with app.app_context():
        machine.transition(call_id, ("ringing",), status="active")
        db.session.commit()
    assert row(sql, call_id)[0] == "active"


@pytest.mark.parametrize("allowed", [("active",), ("ended", "missed")])
def test_a_disallowed_transition_raises_conflict_and_changes_nothing(
    app, client, sql, chat, allowed
):
    call_id = ring(client, chat)
    before = row(sql, call_id)
    with app.app_context():
        with pytest.raises(Conflict, match=r"already over \(audio call ringing\)"):
            machine.transition(call_id, allowed, status="ended", live_conversation_id=None)
        db.session.commit()  # nothing is left to commit: it rolled back
    assert row(sql, call_id) == before


def test_a_transition_checks_its_extra_conditions(app, client, sql, chat):
    call_id = ring(client, chat)
    before = row(sql, call_id)
    with app.app_context(), pytest.raises(Conflict):
        machine.transition(call_id, ("ringing",), machine.calls.c.id == -1, status="active")
    assert row(sql, call_id) == before


# The ring timeout, computed by reads


def test_rings_until_comes_from_the_config(app, client, sql, chat):
    app.config["CALL_RING_SECONDS"] = 30
    call_id = ring(client, chat)
    body = client.get(f"/calls/{call_id}", headers=JSON).get_json()["call"]
    with app.app_context():
        call = db.session.get(Call, call_id)
        assert call.rings_until == call.created_at + timedelta(seconds=30)
        assert call.is_ringing and call.current_status == "ringing"
        assert body["rings_until"] == iso(call.rings_until)
        app.config["CALL_RING_SECONDS"] = 0
        assert not call.is_ringing and not call.is_live
        assert call.current_status == "missed"
        assert call.summary == "Missed audio call"
        assert call.status == "ringing"  # as stored


def test_reading_a_rung_out_call_writes_nothing(app, client, login_client, sql, chat, bob, writes):
    call_id = ring(client, chat)
    assert any(w.lstrip().upper().startswith("INSERT INTO CALLS") for w in writes)  # it listens
    app.config["CALL_RING_SECONDS"] = 0
    writes.clear()
    bob_tab = login_client(bob)
    body = bob_tab.get(f"/calls/{call_id}", headers=JSON).get_json()["call"]
    assert body["status"] == "missed"
    assert {m["user_id"]: m["state"] for m in body["members"]}[bob] == "invited"
    page = text(bob_tab.get(f"/conversations/{chat}"))
    assert f'id="ringing-{call_id}"' not in page
    assert f'id="call-{call_id}"' not in page
    assert "Missed audio call" in text(bob_tab.get(f"/calls/{call_id}"))
    assert writes == []
    assert row(sql, call_id)[0] == "ringing"


def test_in_an_answered_call_those_not_answering_read_as_left(
    app, make, client, login_client, sql, ada, bob, cara
):
    team = make.group(ada, [bob, cara])
    call_id = ring(client, team)
    assert login_client(bob).post(f"/calls/{call_id}/answer", headers=JSON).status_code == 200
    app.config["CALL_RING_SECONDS"] = 0
    with app.app_context():
        call = db.session.get(Call, call_id)
        assert call.current_status == "active"
        assert {m.user_id: m.current_state for m in call.members} == {
            ada: "joined",
            bob: "joined",
            cara: "left",
        }
        assert call.member(cara).label == "no answer"
        assert call.member(cara).state == "invited"  # as stored


# The ring timeout, recorded by the jobs


def test_expire_records_missed_and_publishes_after_the_commit(
    app, client, sql, chat, ada, published
):
    call_id = ring(client, chat)
    app.config["CALL_RING_SECONDS"] = 0
    published.clear()  # what the requests published
    with app.app_context():
        ringing.expire(call_id)
    assert row(sql, call_id)[0] == "missed"
    assert row(sql, call_id)[2] is None  # the conversation's live slot is free again
    assert call_messages(sql, chat) == ["Missed audio call"]
    assert published == [("call-ended", ["missed"]), ("message-created", ["missed"])]
    states = sql.rows(sa.select(CallMember.user_id, CallMember.state))
    assert dict(states)[ada] == "left"


def test_expire_before_the_deadline_waits_for_it(app, client, sql, chat, published):
    app.config["CALL_RING_SECONDS"] = 60
    call_id = ring(client, chat)
    published.clear()  # what the requests published
    with app.app_context():
        ringing.expire(call_id)
    assert row(sql, call_id)[0] == "ringing"
    assert published == []


def test_expire_on_an_answered_call_does_nothing(
    app, client, login_client, sql, chat, bob, published
):
    call_id = ring(client, chat)
    assert login_client(bob).post(f"/calls/{call_id}/answer", headers=JSON).status_code == 200
    before = row(sql, call_id)
    app.config["CALL_RING_SECONDS"] = 0
    published.clear()  # what the requests published
    with app.app_context():
        ringing.expire(call_id)
    assert row(sql, call_id) == before
    assert published == []
    assert call_messages(sql, chat) == []


def test_expire_on_a_finished_call_does_nothing(app, client, sql, chat, published):
    call_id = ring(client, chat)
    assert client.post(f"/calls/{call_id}/end", headers=JSON).status_code == 200
    before = row(sql, call_id)
    app.config["CALL_RING_SECONDS"] = 0
    published.clear()  # what the requests published
    with app.app_context():
        ringing.expire(call_id)
        ringing.expire(call_id + 1000)  # no such call
    assert row(sql, call_id) == before
    assert published == []
    assert call_messages(sql, chat) == ["Cancelled audio call"]


def test_sweep_records_only_the_calls_that_rang_out(
    app, make, client, sql, chat, ada, cara, published
):
    old = ring(client, chat)
    sql.write(
        sa.update(Call).where(Call.id == old).values(created_at=utcnow() - timedelta(hours=1))
    )
    fresh = ring(client, make.private(ada, cara))
    published.clear()  # what the requests published
    with app.app_context():
        ringing.sweep()
    assert row(sql, old)[0] == "missed"
    assert row(sql, fresh)[0] == "ringing"
    assert published == [
        ("call-ended", ["missed", "ringing"]),
        ("message-created", ["missed", "ringing"]),
    ]
    with app.app_context():
        ringing.sweep()  # nothing more to do
    assert len(published) == 2


def test_a_new_call_takes_the_slot_of_one_that_rang_out(app, client, sql, chat):
    old = ring(client, chat)
    # It rang out, but no job has recorded it yet (the new call keeps its own full deadline).
    sql.write(
        sa.update(Call).where(Call.id == old).values(created_at=utcnow() - timedelta(hours=1))
    )
    new = client.post(f"/conversations/{chat}/calls", json={"type": "video"}, headers=JSON)
    assert new.status_code == 201, text(new)
    assert row(sql, old)[0] == "missed"
    assert row(sql, new.get_json()["id"])[0] == "ringing"


def test_the_sweep_is_a_periodic_job_with_its_interval_from_the_config(app):
    jobs = {name_of(job): interval for interval, job in scheduler_of(app)._periodic}
    assert jobs["chipper.services.calls.ringing.sweep"] == app.config["CALL_SWEEP_INTERVAL"]


class TestTheSweepRunsOnItsOwn:
    @pytest.fixture
    def app_config(self):
        return {"CALL_SWEEP_INTERVAL": 0.05}

    def test_a_call_whose_job_never_ran_is_recorded_missed(self, app, client, sql, chat):
        call_id = ring(client, chat)  # the request starts the scheduler
        sql.write(
            sa.update(Call)
            .where(Call.id == call_id)
            .values(created_at=utcnow() - timedelta(hours=1))
        )
        deadline = time.monotonic() + 5
        while row(sql, call_id)[0] != "missed" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert row(sql, call_id)[0] == "missed"
        assert call_messages(sql, chat) == ["Missed audio call"]
