"""The ring timeout, the only one: a call nobody answers within CALL_RING_SECONDS is missed,
and in an answered group call whoever has not answered by then stops being rung.

Reads never record it: Call.current_status and CallMember.current_state compute it from
Call.rings_until, so a page opened after the deadline already shows the call missed. The
scheduler's jobs record it: `expire` runs once per call at its deadline, and `sweep`, every
CALL_SWEEP_INTERVAL, catches the calls whose process stopped before their job ran.
"""

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from chipper.extensions import db
from chipper.jobs import scheduler_of
from chipper.models import Call, utcnow
from chipper.services import Conflict
from chipper.services.calls.machine import calls, members, transition, updated
from chipper.services.calls.outcome import finish


def ring_cutoff():
    """Calls created at or before this have rung long enough."""
    return utcnow() - timedelta(seconds=current_app.config["CALL_RING_SECONDS"])


def rings_on():
    """The SQL side of Call.rang_out, for a guarded transition: still within its ringing time."""
    return calls.c.created_at > ring_cutoff()


def schedule(call_id: int) -> None:
    """The call's timeout, as a job at its deadline (called once it is committed)."""
    scheduler_of(current_app).after(current_app.config["CALL_RING_SECONDS"], expire, call_id)


def expire(call_id: int) -> None:
    """Records the end of the call's ringing time, if it is over: an unanswered call becomes
    missed; in an answered one, whoever it still rings for has left unanswered (and can still
    join). A call already over, or answered by everyone, is left alone."""
    call = db.session.get(Call, call_id)
    if call is None or call.status not in Call.LIVE:
        return
    left = (call.rings_until - utcnow()).total_seconds()
    if left > 0:
        # Early by the clock (the scheduler's is not the database's): look again then.
        scheduler_of(current_app).after(left, expire, call_id)
        return
    conversation = call.conversation
    status = call.status
    if status == "ringing":
        try:
            finish(call_id, conversation, "missed", ("ringing",), ~rings_on())
            return
        except Conflict:
            # Answered (or hung up) a moment ago.
            status = db.session.scalar(sa.select(calls.c.status).where(calls.c.id == call_id))
    if status == "active":
        _stop_ringing(call_id, conversation)


def _stop_ringing(call_id: int, conversation) -> None:
    try:
        transition(call_id, ("active",))
    except Conflict:
        return  # it ended in the meantime
    changed = db.session.execute(
        sa.update(members)
        .where(members.c.call_id == call_id, members.c.state == "invited")
        .values(state="left")
    ).rowcount
    if not changed:
        db.session.rollback()
        return
    updated(call_id, conversation)


def sweep() -> None:
    """Records every ring timeout that is due and was not recorded: calls whose process
    stopped before their `expire` job ran (a job, every CALL_SWEEP_INTERVAL)."""
    still_rung = (
        sa.select(members.c.id)
        .where(members.c.call_id == calls.c.id, members.c.state == "invited")
        .exists()
    )
    due = db.session.scalars(
        sa.select(calls.c.id)
        .where(
            calls.c.created_at <= ring_cutoff(),
            sa.or_(calls.c.status == "ringing", sa.and_(calls.c.status == "active", still_rung)),
        )
        .order_by(calls.c.id)
    ).all()
    for call_id in due:
        expire(call_id)
