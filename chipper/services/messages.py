"""Messages: reading a page of history, sending, deleting."""

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload

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


def send_message(user: User, conversation: Conversation, body: str | None) -> Message:
    message = Message(
        conversation_id=conversation.id, user_id=user.id, body=clean_body(body), type="text"
    )
    message.author = user
    db.session.add(message)
    touch(conversation)
    # Your own message is read by you.
    db.session.execute(
        sa.update(Participant)
        .where(Participant.conversation_id == conversation.id, Participant.user_id == user.id)
        .values(last_read_at=utcnow())
    )
    db.session.flush()
    event = _message_event("message-created", message, conversation)
    db.session.commit()
    events.publish(event)
    return message


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
