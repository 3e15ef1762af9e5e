"""Calls: ringing, answering, declining, hanging up, screen sharing and signaling.

A call rings every other member of its conversation; its states and the guarded transition
that changes them are in `machine`, how it finishes (its timeline entry) in `outcome`, the ring
timeout in `ringing`, and the checks of what browsers send each other in `signals`. These are
the verbs the blueprints call.
"""

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from chipper.extensions import db
from chipper.models import Call, CallMember, Conversation, User, utcnow
from chipper.realtime import events
from chipper.services import Conflict, Forbidden, Invalid, NotFound, push
from chipper.services.calls import ringing, signals
from chipper.services.calls.machine import (
    CALL_TYPES,
    LIVE,
    call_event,
    calls,
    joined_count,
    load,
    member_state,
    members,
    transition,
    updated,
    with_members,
)
from chipper.services.calls.outcome import finish
from chipper.services.calls.signals import SIGNAL_TYPES
from chipper.services.conversations import conversation_for, member_ids

__all__ = [
    "CALL_TYPES",
    "SIGNAL_TYPES",
    "answer",
    "call_for",
    "decline",
    "end",
    "live_call",
    "ringing_for",
    "share_screen",
    "signal",
    "start_call",
]


# Reading


def call_for(user: User, call_id: int) -> tuple[Call, Conversation]:
    """A call the user may see: 404 unless they are in its conversation."""
    conversation_id = db.session.scalar(sa.select(Call.conversation_id).where(Call.id == call_id))
    if conversation_id is None:
        raise NotFound("Call not found.")
    try:
        conversation = conversation_for(user, conversation_id, members=False)
    except NotFound:
        raise NotFound("Call not found.") from None
    return load(call_id), conversation


def live_call(conversation: Conversation) -> Call | None:
    """The conversation's ringing or active call, if any (one that rang out is missed)."""
    call = _holding_the_slot(conversation)
    return call if call is not None and call.is_live else None


def _holding_the_slot(conversation: Conversation) -> Call | None:
    """The call that holds the conversation's one live slot: live, or rung out and not yet
    recorded missed."""
    return db.session.scalar(
        with_members(sa.select(Call).where(Call.live_conversation_id == conversation.id))
    )


def ringing_for(user: User) -> list[Call]:
    """Calls ringing for the user now, in any of their conversations: every page shows them."""
    ringing_ids = sa.select(members.c.call_id).where(
        members.c.user_id == user.id, members.c.state == "invited"
    )
    return list(
        db.session.scalars(
            with_members(
                sa.select(Call).where(
                    Call.id.in_(ringing_ids),
                    Call.live_conversation_id.is_not(None),
                    ringing.rings_on(),
                )
            ).order_by(Call.id)
        )
    )


# Verbs


def start_call(
    user: User, conversation: Conversation, call_type: str, *, join_live: bool = True
) -> tuple[Call, bool]:
    """Rings the conversation's other members. When a call is already live there, the user
    joins it instead (`join_live`), or is refused with 409. Returns the call and whether it
    is new."""
    if call_type not in CALL_TYPES:
        raise Invalid("Choose an audio or a video call.", field="type")
    existing = _holding_the_slot(conversation)
    if existing is not None and not existing.is_live:
        # It rang out and its job has not recorded it yet: the new call needs the slot now.
        ringing.expire(existing.id)
        existing = None
    if existing is None:
        try:
            call = _insert_call(user, conversation, call_type)
        except IntegrityError:
            # Someone else's start won the race for the conversation's one live call.
            db.session.rollback()
            existing = live_call(conversation)
            if existing is None:
                raise
        else:
            event = call_event("call-ringing", call, conversation)
            db.session.commit()
            events.publish(event)
            push.notify_call(call)
            ringing.schedule(call.id)
            return call, True
    if not join_live:
        raise Conflict("A call is already going on in this conversation: join it instead.")
    if user.id in existing.joined_ids():
        return existing, False
    return _join(user, existing, conversation), False


def _insert_call(user: User, conversation: Conversation, call_type: str) -> Call:
    now = utcnow()
    call = Call(
        conversation_id=conversation.id,
        live_conversation_id=conversation.id,
        initiated_by=user.id,
        type=call_type,
        status="ringing",
        created_at=now,
        updated_at=now,
    )
    call.members = [
        CallMember(
            user_id=uid,
            state="joined" if uid == user.id else "invited",
            joined_at=now if uid == user.id else None,
        )
        for uid in sorted(member_ids(conversation))
    ]
    db.session.add(call)
    db.session.flush()
    return load(call.id)


def answer(user: User, call_id: int) -> Call:
    """Joins a ringing or active call. Of two tabs answering at once one wins; the other is
    told the call was answered elsewhere."""
    call, conversation = call_for(user, call_id)
    return _join(user, call, conversation)


def _join(user: User, call: Call, conversation: Conversation) -> Call:
    now = utcnow()
    # Holds the call row (PostgreSQL) until the commit, so joins are counted one at a time.
    # A call that rang out can no longer be answered (an answered one can still be joined).
    transition(
        call.id,
        LIVE,
        sa.or_(calls.c.status == "active", ringing.rings_on()),
        refusal="This call is over",
        status="active",
        started_at=sa.func.coalesce(calls.c.started_at, now),
        updated_at=now,
    )
    joined = db.session.execute(
        sa.update(members)
        .where(
            members.c.call_id == call.id,
            members.c.user_id == user.id,
            members.c.state != "joined",
        )
        .values(state="joined", joined_at=now, left_at=None)
    ).rowcount
    if not joined:
        if db.session.scalar(member_state(call.id, user.id)) == "joined":
            db.session.rollback()
            raise Conflict("You are already in this call, in another tab or on another device.")
        # A member who came into the conversation after the call started ringing.
        db.session.execute(
            sa.insert(members).values(
                call_id=call.id, user_id=user.id, state="joined", joined_at=now
            )
        )
    limit = current_app.config["CALL_MAX_PARTICIPANTS"]
    if db.session.scalar(joined_count(call.id)) > limit:
        db.session.rollback()
        raise Conflict(f"This call is full: calls take at most {limit} people.")
    return updated(call.id, conversation)


def decline(user: User, call_id: int) -> Call:
    """Stops the call ringing for the user. When everyone it rang has declined, the call is
    declined."""
    call, conversation = call_for(user, call_id)
    member = call.member(user.id)
    if not call.is_live or member is None or member.current_state != "invited":
        raise Conflict("This call is not ringing for you.")
    transition(call.id, LIVE, ringing.rings_on())
    changed = db.session.execute(
        sa.update(members)
        .where(members.c.id == member.id, members.c.state == "invited")
        .values(state="declined")
    ).rowcount
    if not changed:
        db.session.rollback()
        raise Conflict("This call is not ringing for you.")
    still_ringing = db.session.scalar(
        sa.select(sa.func.count()).where(members.c.call_id == call.id, members.c.state == "invited")
    )
    status = db.session.scalar(sa.select(calls.c.status).where(calls.c.id == call.id))
    if status == "ringing" and not still_ringing:
        return finish(call.id, conversation, "declined", ("ringing",), ringing.rings_on())
    return updated(call.id, conversation)


def end(user: User, call_id: int) -> Call:
    """Hangs up. The caller hanging up before anyone answered cancels the call; the call ends
    when fewer than two people are left in it."""
    call, conversation = call_for(user, call_id)
    if not call.is_live:
        raise Conflict(f"This call is already over ({call.summary.lower()}).")
    member = call.member(user.id)
    if member is None or member.current_state != "joined":
        raise Forbidden("Only people in the call can end it.")
    if call.status == "ringing":
        return finish(call.id, conversation, "cancelled", ("ringing",), ringing.rings_on())
    transition(call.id, ("active",))
    db.session.execute(
        sa.update(members)
        .where(members.c.id == member.id, members.c.state == "joined")
        .values(state="left", left_at=utcnow(), screen_sharing=False)
    )
    if db.session.scalar(joined_count(call.id)) < 2:
        return finish(call.id, conversation, "ended", ("active",))
    _sync_screen_sharing(call.id)
    return updated(call.id, conversation)


def share_screen(user: User, call_id: int, sharing) -> Call:
    """Says whether the user is showing their screen in the call (`sharing`: on or off, as
    sent; the media itself goes peer to peer); the others see who is."""
    call, conversation = call_for(user, call_id)
    sharing = signals.sharing(sharing)
    member = call.member(user.id)
    if call.status != "active" or member is None or member.current_state != "joined":
        raise Conflict("Share your screen once you are in a call that has been answered.")
    transition(call.id, ("active",))
    db.session.execute(
        sa.update(members)
        .where(members.c.id == member.id, members.c.state == "joined")
        .values(screen_sharing=sharing)
    )
    _sync_screen_sharing(call.id)
    return updated(call.id, conversation)


def _sync_screen_sharing(call_id: int) -> None:
    anyone = (
        sa.select(members.c.id)
        .where(members.c.call_id == call_id, members.c.screen_sharing.is_(True))
        .exists()
    )
    db.session.execute(sa.update(calls).where(calls.c.id == call_id).values(screen_sharing=anyone))


def signal(user: User, call_id: int, body) -> None:
    """Relays a WebRTC offer, answer or ICE candidate (`body`, the JSON as sent) to one member
    of the call, on that user's streams only. Live only: nothing is stored. A signal to a
    member who has just left or declined, or from one who has just left, is dropped."""
    call, conversation = call_for(user, call_id)
    to, signal_type, data = signals.check(body)
    if not call.is_live:
        raise Conflict("This call is over.")
    sender = call.member(user.id)
    if sender is not None and sender.current_state == "left":
        # The sender hung up a moment ago and their page sent a last candidate on its way
        # out: there is no connection of theirs left to set up.
        db.session.commit()
        return
    if sender is None or sender.current_state != "joined":
        raise Forbidden("Join the call before signaling.")
    recipient = call.member(to)
    if recipient is not None and to != user.id and recipient.current_state in ("left", "declined"):
        # They hung up a moment ago (a candidate was on its way): nobody is left to tell.
        db.session.commit()
        return
    if to == user.id or recipient is None or recipient.current_state not in ("joined", "invited"):
        raise Invalid("That person is not in this call.", field="to")
    payload = {"call_id": call.id, "from": user.id, "type": signal_type, "data": data}
    db.session.commit()  # ends the read transaction; nothing was written
    events.publish(events.ephemeral("call-signal", conversation.id, [to], data=payload))
