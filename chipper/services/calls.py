"""Calls: ringing, answering, declining, hanging up, the missed-call timeout and signaling.

A call rings every other member of its conversation. Its status goes
ringing -> active -> ended, or ringing -> missed | declined | cancelled. When it finishes, a
"call" message goes into the timeline ("Missed video call", "Audio call, 3:12"), so ordering,
unread counts and the list preview treat it like any other message.

Transitions are conditional UPDATEs (`... WHERE status IN (...)`) whose row count says who won:
two tabs answering at once, or the timeout firing as someone answers, change the call once.
"""

import json
import threading
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from chipper.extensions import db
from chipper.models import Call, CallMember, Conversation, Participant, User, utcnow
from chipper.realtime import events
from chipper.services import Conflict, Forbidden, Invalid, NotFound, push
from chipper.services.conversations import conversation_for, member_ids
from chipper.services.messages import insert_message

CALL_TYPES = ("audio", "video")
# A WebRTC offer, answer or ICE candidate, or "media": whether the sender's microphone,
# camera and screen are on, so the others can show it at once.
SIGNAL_TYPES = ("offer", "answer", "candidate", "media")

_calls = Call.__table__
_members = CallMember.__table__
_participants = Participant.__table__


# Reading


def call_for(user: User, call_id: int) -> tuple[Call, Conversation]:
    """A call the user may see: 404 unless they are in its conversation. Expires it first
    when it has rung too long, so nobody sees a call ringing forever."""
    conversation_id = db.session.scalar(sa.select(Call.conversation_id).where(Call.id == call_id))
    if conversation_id is None:
        raise NotFound("Call not found.")
    try:
        conversation = conversation_for(user, conversation_id, members=False)
    except NotFound:
        raise NotFound("Call not found.") from None
    expire_missed(conversation_id)
    return _load(call_id), conversation


def live_call(conversation: Conversation) -> Call | None:
    """The conversation's ringing or active call, if any."""
    expire_missed(conversation.id)
    return db.session.scalar(
        _with_members(sa.select(Call).where(Call.live_conversation_id == conversation.id))
    )


def ringing_for(user: User) -> list[Call]:
    """Calls ringing for the user now, in any of their conversations: every page shows them."""
    ringing = sa.select(_members.c.call_id).where(
        _members.c.user_id == user.id, _members.c.state == "invited"
    )
    calls = db.session.scalars(
        _with_members(
            sa.select(Call).where(Call.id.in_(ringing), Call.live_conversation_id.is_not(None))
        ).order_by(Call.id)
    ).all()
    if not calls:
        return []
    cutoff = _ring_cutoff()
    if any(c.created_at <= cutoff for c in calls):
        for call in calls:
            expire_missed(call_id=call.id)
        return ringing_for(user)
    return list(calls)


def _with_members(stmt):
    return stmt.options(
        selectinload(Call.members).selectinload(CallMember.user), selectinload(Call.conversation)
    )


def _load(call_id: int) -> Call:
    # populate_existing: the conditional UPDATEs below bypass the ORM, so reload what they set.
    return db.session.scalars(
        _with_members(sa.select(Call).where(Call.id == call_id)).execution_options(
            populate_existing=True
        )
    ).one()


# Verbs


def start_call(
    user: User, conversation: Conversation, call_type: str, *, join_live: bool = True
) -> tuple[Call, bool]:
    """Rings the conversation's other members. When a call is already live there, the user
    joins it instead (`join_live`), or is refused with 409. Returns the call and whether it
    is new."""
    if call_type not in CALL_TYPES:
        raise Invalid("Choose an audio or a video call.", field="type")
    existing = live_call(conversation)
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
            event = _call_event("call-ringing", call, conversation)
            db.session.commit()
            events.publish(event)
            push.notify_call(call)
            _schedule_expiry(current_app._get_current_object(), call.id)
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
    return _load(call.id)


def answer(user: User, call_id: int) -> Call:
    """Joins a ringing or active call. Of two tabs answering at once one wins; the other is
    told the call was answered elsewhere."""
    call, conversation = call_for(user, call_id)
    return _join(user, call, conversation)


def _join(user: User, call: Call, conversation: Conversation) -> Call:
    now = utcnow()
    # Locks the call row (PostgreSQL) until the commit, so joins are counted one at a time.
    changed = db.session.execute(
        sa.update(_calls)
        .where(_calls.c.id == call.id, _calls.c.status.in_(Call.LIVE))
        .values(
            status="active",
            started_at=sa.func.coalesce(_calls.c.started_at, now),
            updated_at=now,
        )
    ).rowcount
    if not changed:
        db.session.rollback()
        raise Conflict(f"This call is over ({_load(call.id).summary.lower()}).")
    joined = db.session.execute(
        sa.update(_members)
        .where(
            _members.c.call_id == call.id,
            _members.c.user_id == user.id,
            _members.c.state != "joined",
        )
        .values(state="joined", joined_at=now, left_at=None)
    ).rowcount
    if not joined:
        if db.session.scalar(_member_state(call.id, user.id)) == "joined":
            db.session.rollback()
            raise Conflict("You are already in this call, in another tab or on another device.")
        # A member who came into the conversation after the call started ringing.
        db.session.execute(
            sa.insert(_members).values(
                call_id=call.id, user_id=user.id, state="joined", joined_at=now
            )
        )
    limit = current_app.config["CALL_MAX_PARTICIPANTS"]
    if db.session.scalar(_joined_count(call.id)) > limit:
        db.session.rollback()
        raise Conflict(f"This call is full: calls take at most {limit} people.")
    return _updated(call.id, conversation)


def _lock(call_id: int, statuses: tuple[str, ...]) -> None:
    """Takes the call's row (PostgreSQL) until the commit, so members deciding at once are
    counted one after the other: two of three hanging up together leave one, who ends it."""
    changed = db.session.execute(
        sa.update(_calls)
        .where(_calls.c.id == call_id, _calls.c.status.in_(statuses))
        .values(updated_at=utcnow())
    ).rowcount
    if not changed:
        db.session.rollback()
        raise Conflict(f"This call is already over ({_load(call_id).summary.lower()}).")


def _member_state(call_id: int, user_id: int):
    return sa.select(_members.c.state).where(
        _members.c.call_id == call_id, _members.c.user_id == user_id
    )


def _joined_count(call_id: int):
    return sa.select(sa.func.count()).where(
        _members.c.call_id == call_id, _members.c.state == "joined"
    )


def decline(user: User, call_id: int) -> Call:
    """Stops the call ringing for the user. When everyone it rang has declined, the call is
    declined."""
    call, conversation = call_for(user, call_id)
    member = call.member(user.id)
    if not call.is_live or member is None or member.state != "invited":
        raise Conflict("This call is not ringing for you.")
    _lock(call.id, ("ringing", "active"))
    changed = db.session.execute(
        sa.update(_members)
        .where(_members.c.id == member.id, _members.c.state == "invited")
        .values(state="declined")
    ).rowcount
    if not changed:
        db.session.rollback()
        raise Conflict("This call is not ringing for you.")
    still_ringing = db.session.scalar(
        sa.select(sa.func.count()).where(
            _members.c.call_id == call.id, _members.c.state == "invited"
        )
    )
    status = db.session.scalar(sa.select(_calls.c.status).where(_calls.c.id == call.id))
    if status == "ringing" and not still_ringing:
        return _finish(call.id, conversation, "declined", ("ringing",))
    return _updated(call.id, conversation)


def end(user: User, call_id: int) -> Call:
    """Hangs up. The caller hanging up before anyone answered cancels the call; the call ends
    when fewer than two people are left in it."""
    call, conversation = call_for(user, call_id)
    if not call.is_live:
        raise Conflict(f"This call is already over ({call.summary.lower()}).")
    member = call.member(user.id)
    if member is None or member.state != "joined":
        raise Forbidden("Only people in the call can end it.")
    if call.status == "ringing":
        return _finish(call.id, conversation, "cancelled", ("ringing",))
    _lock(call.id, ("active",))
    db.session.execute(
        sa.update(_members)
        .where(_members.c.id == member.id, _members.c.state == "joined")
        .values(state="left", left_at=utcnow(), screen_sharing=False)
    )
    if db.session.scalar(_joined_count(call.id)) < 2:
        return _finish(call.id, conversation, "ended", ("active",))
    _sync_screen_sharing(call.id)
    return _updated(call.id, conversation)


def share_screen(user: User, call_id: int, sharing: bool) -> Call:
    """Says whether the user is showing their screen in the call (the media itself goes
    peer to peer); the others see who is."""
    call, conversation = call_for(user, call_id)
    member = call.member(user.id)
    if call.status != "active" or member is None or member.state != "joined":
        raise Conflict("Share your screen once you are in a call that has been answered.")
    _lock(call.id, ("active",))
    db.session.execute(
        sa.update(_members)
        .where(_members.c.id == member.id, _members.c.state == "joined")
        .values(screen_sharing=sharing)
    )
    _sync_screen_sharing(call.id)
    return _updated(call.id, conversation)


def _sync_screen_sharing(call_id: int) -> None:
    anyone = (
        sa.select(_members.c.id)
        .where(_members.c.call_id == call_id, _members.c.screen_sharing.is_(True))
        .exists()
    )
    db.session.execute(
        sa.update(_calls).where(_calls.c.id == call_id).values(screen_sharing=anyone)
    )


def _ring_cutoff():
    return utcnow() - timedelta(seconds=current_app.config["CALL_RING_SECONDS"])


def expire_missed(conversation_id: int | None = None, call_id: int | None = None) -> list[int]:
    """Calls that rang longer than CALL_RING_SECONDS become missed, and in a call already
    answered, whoever it still rings for stops being rung. Run lazily by every read and verb,
    and by a timer per call, so the ringing stops even when nobody looks."""
    cutoff = _ring_cutoff()
    _stop_ringing_in_active_calls(cutoff, conversation_id, call_id)
    stmt = sa.select(_calls.c.id, _calls.c.conversation_id).where(
        _calls.c.status == "ringing", _calls.c.created_at <= cutoff
    )
    if conversation_id is not None:
        stmt = stmt.where(_calls.c.live_conversation_id == conversation_id)
    if call_id is not None:
        stmt = stmt.where(_calls.c.id == call_id)
    expired = []
    for cid, conv_id in db.session.execute(stmt).all():
        conversation = db.session.get(Conversation, conv_id)
        try:
            _finish(cid, conversation, "missed", ("ringing",), before=cutoff)
        except Conflict:
            continue  # answered or cancelled in the meantime
        expired.append(cid)
    return expired


def _stop_ringing_in_active_calls(cutoff, conversation_id, call_id) -> None:
    """In an answered group call, members who have not answered within CALL_RING_SECONDS
    stop being rung (state left, never joined: "no answer"). They can still join."""
    stmt = sa.select(_calls.c.id, _calls.c.conversation_id).where(
        _calls.c.status == "active",
        _calls.c.created_at <= cutoff,
        sa.select(_members.c.id)
        .where(_members.c.call_id == _calls.c.id, _members.c.state == "invited")
        .exists(),
    )
    if conversation_id is not None:
        stmt = stmt.where(_calls.c.live_conversation_id == conversation_id)
    if call_id is not None:
        stmt = stmt.where(_calls.c.id == call_id)
    for cid, conv_id in db.session.execute(stmt).all():
        changed = db.session.execute(
            sa.update(_members)
            .where(_members.c.call_id == cid, _members.c.state == "invited")
            .values(state="left")
        ).rowcount
        if not changed:
            continue
        conversation = db.session.get(Conversation, conv_id)
        event = _call_event("call-updated", _load(cid), conversation)
        db.session.commit()
        events.publish(event)


def _finish(
    call_id: int,
    conversation: Conversation,
    status: str,
    from_statuses: tuple[str, ...],
    before=None,
) -> Call:
    """Moves a live call to its final status, if it still is in one of `from_statuses`, and
    puts its entry in the timeline. Commits and publishes."""
    now = utcnow()
    condition = [_calls.c.id == call_id, _calls.c.status.in_(from_statuses)]
    if before is not None:
        condition.append(_calls.c.created_at <= before)
    changed = db.session.execute(
        sa.update(_calls)
        .where(*condition)
        .values(
            status=status,
            ended_at=now,
            live_conversation_id=None,
            updated_at=now,
            screen_sharing=False,
        )
    ).rowcount
    if not changed:
        db.session.rollback()
        raise Conflict(f"This call is already over ({_load(call_id).summary.lower()}).")
    db.session.execute(
        sa.update(_members)
        .where(_members.c.call_id == call_id, _members.c.state == "joined")
        .values(state="left", left_at=now, screen_sharing=False)
    )
    call = _load(call_id)
    # The caller's entry; unread for those who did not take part (see below).
    message = insert_message(conversation, call.initiated_by, call.summary, call_id=call.id, at=now)
    # Whoever took part has seen this call: its entry is unread only for those who missed or
    # declined it.
    took_part = sa.select(_members.c.user_id).where(
        _members.c.call_id == call_id, _members.c.joined_at.is_not(None)
    )
    db.session.execute(
        sa.update(_participants)
        .where(
            _participants.c.conversation_id == conversation.id,
            _participants.c.user_id.in_(took_part),
        )
        .values(last_read_at=now)
    )
    recipients = member_ids(conversation)
    envelopes = events.record_many(
        events.Spec(
            "call-ended",
            conversation.id,
            recipients,
            html=events.render("calls/_call.html", call=call),
            data=call.to_json(),
        ),
        events.Spec(
            "message-created",
            conversation.id,
            recipients,
            html=events.render("messages/_message.html", message=message),
            data=message.to_json(),
        ),
    )
    db.session.commit()
    events.publish(*envelopes)
    return call


def _updated(call_id: int, conversation: Conversation) -> Call:
    """Commits a change to a live call and tells its conversation."""
    call = _load(call_id)
    event = _call_event("call-updated", call, conversation)
    db.session.commit()
    events.publish(event)
    return call


def _call_event(kind: str, call: Call, conversation: Conversation) -> dict:
    return events.record(
        kind,
        conversation.id,
        member_ids(conversation),
        html=events.render("calls/_call.html", call=call),
        data=call.to_json(),
    )


# The timeout, in the process


def _schedule_expiry(app: Flask, call_id: int) -> None:
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


# Signaling


# What each kind of signal carries: what calls.js sends (RTCSessionDescription.toJSON(),
# RTCIceCandidate.toJSON(), its own media state), so the other browser is handed nothing
# that its RTCPeerConnection or the call page would trip over.
SIGNAL_SHAPES = {
    "offer": 'An offer carries its session description: {"type": "offer", "sdp": "..."}.',
    "answer": 'An answer carries its session description: {"type": "answer", "sdp": "..."}.',
    "candidate": (
        'A candidate carries an ICE candidate: {"candidate": "...", "sdpMid": a string or '
        'null, "sdpMLineIndex": a number or null}, or null when there are no more.'
    ),
    "media": (
        'A media signal says what the sender has on: {"audio": true or false, "video": true '
        'or false, "screen": true or false}.'
    ),
}
MEDIA_FIELDS = {"audio", "video", "screen"}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _description(signal_type: str, data) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("sdp"), str)
        and data.get("type", signal_type) == signal_type
    )


def _candidate(signal_type: str, data) -> bool:
    if data is None:
        return True  # end of candidates
    return (
        isinstance(data, dict)
        and isinstance(data.get("candidate"), str)
        and isinstance(data.get("sdpMid"), str | None)
        and (data.get("sdpMLineIndex") is None or _is_int(data["sdpMLineIndex"]))
        and isinstance(data.get("usernameFragment"), str | None)
    )


def _media(signal_type: str, data) -> bool:
    return (
        isinstance(data, dict)
        and set(data) <= MEDIA_FIELDS
        and all(isinstance(value, bool) for value in data.values())
    )


SIGNAL_CHECKS = {
    "offer": _description,
    "answer": _description,
    "candidate": _candidate,
    "media": _media,
}


def signal(user: User, call_id: int, to, signal_type, data) -> None:
    """Relays a WebRTC offer, answer or ICE candidate to one member of the call, on that
    user's streams only. Live only: nothing is stored."""
    call, conversation = call_for(user, call_id)
    if signal_type not in SIGNAL_TYPES:
        raise Invalid("A signal is an offer, an answer, a candidate or media.", field="type")
    if isinstance(to, bool) or not isinstance(to, int):
        raise Invalid("Say whom the signal is for (a user id).", field="to")
    if not SIGNAL_CHECKS[signal_type](signal_type, data):
        raise Invalid(SIGNAL_SHAPES[signal_type], field="data")
    limit = current_app.config["CALL_SIGNAL_MAX_BYTES"]
    if len(json.dumps(data).encode()) > limit:
        raise Invalid(f"Signals are at most {limit // 1024} KB.", field="data")
    if not call.is_live:
        raise Conflict("This call is over.")
    sender = call.member(user.id)
    if sender is None or sender.state != "joined":
        raise Forbidden("Join the call before signaling.")
    recipient = call.member(to)
    if to == user.id or recipient is None or recipient.state not in ("joined", "invited"):
        raise Invalid("That person is not in this call.", field="to")
    payload = {"call_id": call.id, "from": user.id, "type": signal_type, "data": data}
    db.session.commit()  # ends the read transaction; nothing was written
    events.publish(events.ephemeral("call-signal", conversation.id, [to], data=payload))
