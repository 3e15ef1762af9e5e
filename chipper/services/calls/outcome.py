"""How a call finishes: its final status, and its line in the timeline ("Missed video call",
"Audio call, 3:12"), so ordering, unread counts and the list preview treat it like any other
message. Published only after the commit."""

import sqlalchemy as sa

from chipper.extensions import db
from chipper.models import Call, Conversation, Participant, utcnow
from chipper.realtime import events
from chipper.services.calls.machine import load, members, transition
from chipper.services.conversations import member_ids
from chipper.services.messages import insert_message

_participants = Participant.__table__


def finish(
    call_id: int,
    conversation: Conversation,
    status: str,
    from_statuses: tuple[str, ...],
    *conditions,
) -> Call:
    """Moves a live call to its final status, if it is still in one of `from_statuses` (and
    `conditions` hold; else Conflict), and puts its entry in the timeline. Commits and
    publishes."""
    now = utcnow()
    transition(
        call_id,
        from_statuses,
        *conditions,
        status=status,
        ended_at=now,
        live_conversation_id=None,
        updated_at=now,
        screen_sharing=False,
    )
    db.session.execute(
        sa.update(members)
        .where(members.c.call_id == call_id, members.c.state == "joined")
        .values(state="left", left_at=now, screen_sharing=False)
    )
    call = load(call_id)
    # The caller's entry; unread for those who did not take part (see below).
    message = insert_message(conversation, call.initiated_by, call.summary, call_id=call.id, at=now)
    # Whoever took part has seen this call: its entry is unread only for those who missed or
    # declined it.
    took_part = sa.select(members.c.user_id).where(
        members.c.call_id == call_id, members.c.joined_at.is_not(None)
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
            message_id=message.id,
        ),
    )
    db.session.commit()
    events.publish(*envelopes)
    return call
