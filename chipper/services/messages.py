"""Messages: reading a page of history, sending, deleting."""

from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from chipper.extensions import db
from chipper.models import Conversation, Message, Participant, User, utcnow
from chipper.realtime import events
from chipper.services import Forbidden, Invalid, NotFound
from chipper.services.conversations import conversation_for, member_ids, touch


def page_of_messages(
    conversation: Conversation, before: int | None = None, limit: int | None = None
) -> tuple[list[Message], bool]:
    """Up to `limit` messages older than `before` (keyset), oldest first, and whether more exist."""
    limit = limit or current_app.config["MESSAGES_PER_PAGE"]
    stmt = (
        sa.select(Message)
        .where(Message.conversation_id == conversation.id)
        .options(selectinload(Message.author))
        .order_by(Message.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        stmt = stmt.where(Message.id < before)
    rows = list(db.session.scalars(stmt))
    has_more = len(rows) > limit
    return rows[:limit][::-1], has_more


def clean_body(body: str | None) -> str:
    body = (body or "").strip()
    limit = current_app.config["MESSAGE_MAX_LENGTH"]
    if not body:
        raise Invalid("Write a message before sending.", field="body")
    if len(body) > limit:
        raise Invalid(
            f"Messages are at most {limit:,} characters; this one has {len(body):,}.",
            field="body",
        )
    return body


_participants = Participant.__table__
_READ_UP_TO = (
    sa.update(_participants)
    .where(
        _participants.c.conversation_id == sa.bindparam("cid"),
        _participants.c.user_id == sa.bindparam("uid"),
    )
    .values(last_read_at=sa.bindparam("read_at"))
)


def send_message(user: User, conversation: Conversation, body: str | None) -> Message:
    body = clean_body(body)
    now = utcnow()
    # INSERT ... RETURNING through the ORM gives a loaded Message without a unit-of-work
    # flush. Its author is the user already in the session (no query).
    message = db.session.scalars(
        sa.insert(Message).returning(Message),
        [
            {
                "conversation_id": conversation.id,
                "user_id": user.id,
                "body": body,
                "type": "text",
                "created_at": now,
                "updated_at": now,
            }
        ],
    ).one()
    touch(conversation, now)
    _read_up_to(user, conversation, now)
    event = _message_event("message-created", message, conversation)
    db.session.commit()
    events.publish(event)
    return message


def _read_up_to(user: User, conversation: Conversation, read_at: datetime) -> None:
    """Your own message is read by you. A plain UPDATE rather than the ORM's bulk one, which
    autoflushes and scans the session to keep loaded objects in step; a participant that
    is loaded is kept in step here instead."""
    db.session.execute(_READ_UP_TO, {"cid": conversation.id, "uid": user.id, "read_at": read_at})
    if "participants" not in sa.inspect(conversation).unloaded:
        for participant in conversation.participants:
            if participant.user_id == user.id:
                set_committed_value(participant, "last_read_at", read_at)


def _message_event(kind: str, message: Message, conversation: Conversation) -> dict:
    # Rendered once, for everyone: the partial does not depend on who reads it.
    html = events.render("messages/_message.html", message=message)
    return events.record(
        kind, conversation.id, member_ids(conversation), html=html, data=message.to_json()
    )


def message_for(user: User, message_id: int) -> tuple[Message, Conversation]:
    """A message the user may see: 404 when it does not exist or its conversation is not theirs."""
    message = db.session.get(Message, message_id)
    if message is None:
        raise NotFound("Message not found.")
    try:
        conversation = conversation_for(user, message.conversation_id)
    except NotFound:
        raise NotFound("Message not found.") from None
    return message, conversation


def delete_message(user: User, message_id: int) -> Message:
    message, conversation = message_for(user, message_id)
    if message.user_id != user.id:
        raise Forbidden("You can only delete your own messages.")
    if not message.is_deleted:
        message.deleted_at = utcnow()
        message.body = ""
        event = _message_event("message-deleted", message, conversation)
        db.session.commit()
        events.publish(event)
    return message
