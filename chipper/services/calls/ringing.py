"""The ring timeout: a call nobody answers within CALL_RING_SECONDS is missed, and in an
answered group call whoever has not answered by then stops being rung."""

import threading
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, current_app

from chipper.extensions import db
from chipper.models import Conversation, utcnow
from chipper.realtime import events
from chipper.services import Conflict
from chipper.services.calls.machine import call_event, calls, load, members
from chipper.services.calls.outcome import finish


def ring_cutoff():
    return utcnow() - timedelta(seconds=current_app.config["CALL_RING_SECONDS"])


def expire_missed(conversation_id: int | None = None, call_id: int | None = None) -> list[int]:
    """Calls that rang longer than CALL_RING_SECONDS become missed, and in a call already
    answered, whoever it still rings for stops being rung. Run lazily by every read and verb,
    and by a timer per call, so the ringing stops even when nobody looks."""
    cutoff = ring_cutoff()
    _stop_ringing_in_active_calls(cutoff, conversation_id, call_id)
    stmt = sa.select(calls.c.id, calls.c.conversation_id).where(
        calls.c.status == "ringing", calls.c.created_at <= cutoff
    )
    if conversation_id is not None:
        stmt = stmt.where(calls.c.live_conversation_id == conversation_id)
    if call_id is not None:
        stmt = stmt.where(calls.c.id == call_id)
    expired = []
    for cid, conv_id in db.session.execute(stmt).all():
        conversation = db.session.get(Conversation, conv_id)
        try:
            finish(cid, conversation, "missed", ("ringing",), calls.c.created_at <= cutoff)
        except Conflict:
            continue  # answered or cancelled in the meantime
        expired.append(cid)
    return expired


def _stop_ringing_in_active_calls(cutoff, conversation_id, call_id) -> None:
    """In an answered group call, members who have not answered within CALL_RING_SECONDS
    stop being rung (state left, never joined: "no answer"). They can still join."""
    stmt = sa.select(calls.c.id, calls.c.conversation_id).where(
        calls.c.status == "active",
        calls.c.created_at <= cutoff,
        sa.select(members.c.id)
        .where(members.c.call_id == calls.c.id, members.c.state == "invited")
        .exists(),
    )
    if conversation_id is not None:
        stmt = stmt.where(calls.c.live_conversation_id == conversation_id)
    if call_id is not None:
        stmt = stmt.where(calls.c.id == call_id)
    for cid, conv_id in db.session.execute(stmt).all():
        changed = db.session.execute(
            sa.update(members)
            .where(members.c.call_id == cid, members.c.state == "invited")
            .values(state="left")
        ).rowcount
        if not changed:
            continue
        conversation = db.session.get(Conversation, conv_id)
        event = call_event("call-updated", load(cid), conversation)
        db.session.commit()
        events.publish(event)


def schedule_expiry(app: Flask, call_id: int) -> None:
    """A timer per ringing call marks it missed when its time is up, so the callee's ringing
    stops even if no request comes. Timers are cancelled when the app closes (Realtime.close);
    a restarted process still expires the call lazily on the next read."""
    realtime = app.extensions["chipper.realtime"]
    if realtime.closed:
        return

    def check():
        realtime.timers.discard(timer)
        with app.app_context():
            try:
                expire_missed(call_id=call_id)
            finally:
                db.session.remove()

    # A moment past the deadline, so the call has certainly rung long enough.
    timer = threading.Timer(app.config["CALL_RING_SECONDS"] + 0.05, check)
    timer.daemon = True
    realtime.timers.add(timer)
    timer.start()
