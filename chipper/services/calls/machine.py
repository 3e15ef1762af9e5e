"""A call's states and the one way its row changes: a guarded UPDATE.

A call goes ringing -> active -> ended, or ringing -> missed | declined | cancelled; each member
is invited (rung), joined, declined or left. Every change of a call's status is a conditional
UPDATE (`... WHERE status IN (allowed)`) whose row count says who won: two tabs answering at
once, or the timeout firing as someone answers, change the call once.
"""

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from chipper.extensions import db
from chipper.models import Call, CallMember, Conversation, utcnow
from chipper.realtime import events
from chipper.services import Conflict
from chipper.services.conversations import member_ids

CALL_TYPES = ("audio", "video")
LIVE = Call.LIVE
FINAL = ("ended", "missed", "declined", "cancelled")
MEMBER_STATES = ("invited", "joined", "declined", "left")

calls = Call.__table__
members = CallMember.__table__


def transition(
    call_id: int,
    allowed: tuple[str, ...],
    *conditions,
    refusal: str = "This call is already over",
    **values,
) -> None:
    """Changes the call's row if its status is still one of `allowed` (and `conditions` hold),
    else rolls back and raises Conflict, saying what became of the call. On PostgreSQL the
    UPDATE also holds the row until the commit, so people acting at once are counted one after
    the other: two of three hanging up together leave one, who ends it."""
    values.setdefault("updated_at", utcnow())
    changed = db.session.execute(
        sa.update(calls)
        .where(calls.c.id == call_id, calls.c.status.in_(allowed), *conditions)
        .values(**values)
    ).rowcount
    if not changed:
        db.session.rollback()
        raise Conflict(f"{refusal} ({load(call_id).summary.lower()}).")


def with_members(stmt):
    return stmt.options(
        selectinload(Call.members).selectinload(CallMember.user), selectinload(Call.conversation)
    )


def load(call_id: int) -> Call:
    # populate_existing: transitions are Core UPDATEs that bypass the ORM, so reload what they set.
    return db.session.scalars(
        with_members(sa.select(Call).where(Call.id == call_id)).execution_options(
            populate_existing=True
        )
    ).one()


def member_state(call_id: int, user_id: int):
    return sa.select(members.c.state).where(
        members.c.call_id == call_id, members.c.user_id == user_id
    )


def joined_count(call_id: int):
    return sa.select(sa.func.count()).where(
        members.c.call_id == call_id, members.c.state == "joined"
    )


def call_event(kind: str, call: Call, conversation: Conversation) -> events.Envelope:
    return events.record(
        kind,
        conversation.id,
        member_ids(conversation),
        html=events.render("calls/_call.html", call=call),
        data=call.to_json(),
    )


def updated(call_id: int, conversation: Conversation) -> Call:
    """Commits a change to a live call, then tells its conversation."""
    call = load(call_id)
    event = call_event("call-updated", call, conversation)
    db.session.commit()
    events.publish(event)
    return call
