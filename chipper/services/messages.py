"""Messages: reading a page of history, sending, editing, deleting."""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from chipper import media
from chipper.extensions import db
from chipper.models import (
    MAX_ID,
    Attachment,
    Conversation,
    Mention,
    Message,
    Participant,
    Reaction,
    User,
    utcnow,
)
from chipper.realtime import events
from chipper.services import Conflict, Forbidden, Invalid, NotFound, push, search, text
from chipper.services.conversations import Membership, conversation_for, member_ids, touch
from chipper.services.mentions import record_mentions

# What a message in the timeline shows besides itself: its author, its file, the message
# it answers with that one's author, and who reacted with what.
_SHOWN_WITH = (
    selectinload(Message.author),
    selectinload(Message.attachment),
    selectinload(Message.reply_to).selectinload(Message.author),
    selectinload(Message.reactions).selectinload(Reaction.user),
    selectinload(Message.mentions).selectinload(Mention.user),
)


def page_of_messages(
    conversation: Conversation, before: int | None = None, limit: int | None = None
) -> tuple[list[Message], bool]:
    """Up to `limit` messages older than `before` (keyset), oldest first, and whether more exist."""
    limit = limit or current_app.config["MESSAGES_PER_PAGE"]
    stmt = (
        sa.select(Message)
        .where(Message.conversation_id == conversation.id)
        .options(*_SHOWN_WITH)
        .order_by(Message.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        stmt = stmt.where(Message.id < before)
    rows = list(db.session.scalars(stmt))
    has_more = len(rows) > limit
    return rows[:limit][::-1], has_more


def page_around(
    conversation: Conversation, message_id: int, limit: int | None = None
) -> tuple[list[Message], bool, bool]:
    """The history around a message: it and up to half a page before it, then what came
    after, oldest first; whether older and whether newer messages exist beyond these."""
    limit = limit or current_app.config["MESSAGES_PER_PAGE"]
    message_id = min(message_id, MAX_ID - 1)  # a number from the address bar, kept in range
    older, has_more = page_of_messages(conversation, message_id + 1, limit // 2 + 1)
    newer = list(
        db.session.scalars(
            sa.select(Message)
            .where(Message.conversation_id == conversation.id, Message.id > message_id)
            .options(*_SHOWN_WITH)
            .order_by(Message.id)
            .limit(limit - len(older) + 1)
        )
    )
    has_newer = len(newer) > limit - len(older)
    return older + newer[: limit - len(older)], has_more, has_newer


def clean_body(body: str | None, *, required: bool = True) -> str:
    body = text.message_text(body or "").strip()
    limit = current_app.config["MESSAGE_MAX_LENGTH"]
    if not body and required:
        raise Invalid("Write a message before sending.", field="body")
    if len(body) > limit:
        raise Invalid(
            f"Messages are at most {limit:,} characters; this one has {len(body):,}.",
            field="body",
        )
    return body


_INSERT_MESSAGE = sa.insert(Message.__table__).returning(Message.__table__.c.id)
_participants = Participant.__table__
_READ_UP_TO = (
    sa.update(_participants)
    .where(
        _participants.c.conversation_id == sa.bindparam("cid"),
        _participants.c.user_id == sa.bindparam("uid"),
    )
    .values(last_read_at=sa.bindparam("read_at"))
)


@dataclass
class Upload:
    """A file sent with a message: its bytes and the name the sender gave it."""

    stream: BinaryIO
    filename: str | None


def send_message(
    user: User,
    membership: Membership,
    body: str | None,
    upload: Upload | None = None,
    *,
    stored: media.StoredFile | None = None,
    client_key: str | None = None,
    reply_to: int | str | None = None,
) -> Message:
    """A text message, or a file with an optional caption, perhaps answering (`reply_to`) a
    message of the same conversation. The file is checked and stored
    first (or was, when it comes `stored` already: a shared file); if anything after that
    fails, it is removed again. A `client_key` this user sent before answers with that first
    message: nothing is stored, published or pushed again (`message.replayed` says so)."""
    conversation = membership.conversation
    client_key = check_client_key(client_key)
    if client_key and (first := _sent_with(user, client_key)) is not None:
        if first.conversation_id != conversation.id:
            raise Conflict("This client key was used for a message elsewhere.", field="client_key")
        return first
    body = clean_body(body, required=upload is None and stored is None)
    original = replied_to(conversation, reply_to)
    if upload:
        stored = media.store(upload.stream, upload.filename)
    try:
        message = insert_message(
            conversation, user.id, body, stored=stored, client_key=client_key, reply_to=original
        )
        record_mentions(message, membership.member_ids)
        _read_up_to(user, conversation, message.created_at)
        event = message_event("message-created", message, membership.member_ids)
        db.session.commit()
    except IntegrityError:
        # The same key raced in from another request (a double click): the first one won.
        db.session.rollback()
        if stored:
            media.discard(stored.names)
        if client_key and (first := _sent_with(user, client_key)) is not None:
            return first
        raise
    except BaseException:
        db.session.rollback()
        if stored:
            media.discard(stored.names)
        raise
    events.publish(event)
    push.notify_message(message, membership.member_ids)
    return message


def replied_to(conversation: Conversation, reply_to: int | str | None) -> Message | None:
    """The message a send answers: one of this conversation's, not deleted; None for none."""
    if reply_to is None or reply_to == "":
        return None
    refusal = Invalid("Reply to a message of this conversation.", field="reply_to")
    try:
        message_id = int(reply_to)
    except (TypeError, ValueError):
        raise refusal from None
    original = db.session.get(Message, message_id) if 0 < message_id <= MAX_ID else None
    if original is None or original.conversation_id != conversation.id:
        raise refusal
    if original.is_deleted:
        raise Invalid("That message was deleted: reply to another one.", field="reply_to")
    return original


CLIENT_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")


def check_client_key(key: str | None) -> str | None:
    if not key:
        return None
    if not CLIENT_KEY.fullmatch(key):
        raise Invalid("A client key is 8 to 64 letters, digits, - or _.", field="client_key")
    return key


def _sent_with(user: User, client_key: str) -> Message | None:
    message = db.session.scalar(
        sa.select(Message)
        .where(Message.user_id == user.id, Message.client_key == client_key)
        .options(selectinload(Message.attachment))
    )
    if message is not None:
        message.replayed = True
    return message


def insert_message(
    conversation: Conversation,
    author_id: int | None,
    body: str,
    *,
    stored: media.StoredFile | None = None,
    call_id: int | None = None,
    at: datetime | None = None,
    client_key: str | None = None,
    reply_to: Message | None = None,
) -> Message:
    """The one way an entry goes into a timeline: a sent message, a shared file and a finished
    call's line all come through here. Inserts it (with its attachment, if any) and moves the
    conversation up everyone's list; the caller commits, then publishes."""
    now = at or utcnow()
    values = {
        "conversation_id": conversation.id,
        "user_id": author_id,
        "body": body,
        "type": "call" if call_id is not None else stored.kind if stored else "text",
        "file_path": None,
        "call_id": call_id,
        "client_key": client_key,
        "deleted_at": None,
        "edited_at": None,
        "reply_to_id": reply_to.id if reply_to else None,
        "created_at": now,
        "updated_at": now,
    }
    # A Core INSERT ... RETURNING id, then the object made from the values we already hold:
    # the ORM's own insert (unit of work or bulk) costs several times the statement. Every
    # column is set, so nothing is left to load; its author, when already in the session (the
    # sender, a call's members), comes from there without a query.
    message_id = db.session.scalar(_INSERT_MESSAGE, values)
    message = Message(id=message_id, **values)
    make_transient_to_detached(message)
    db.session.add(message)
    attachment = None
    if stored:
        attachment = Attachment(
            message_id=message.id,
            kind=stored.kind,
            content_type=stored.content_type,
            stored_name=stored.stored_name,
            original_name=stored.original_name,
            size=stored.size,
            width=stored.width,
            height=stored.height,
            thumbnail_name=stored.thumbnail_name,
            created_at=now,
        )
        db.session.add(attachment)
        db.session.flush()
    # Known now, so rendering the message does not query for them.
    set_committed_value(message, "attachment", attachment)
    set_committed_value(message, "reply_to", reply_to)
    set_committed_value(message, "reactions", [])
    set_committed_value(message, "mentions", [])
    search.index(message, new=True)
    touch(conversation, now)
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


def message_event(kind: str, message: Message, recipients: list[int]) -> events.Envelope:
    # Rendered once, for everyone: the partial does not depend on who reads it.
    html = events.render("messages/_message.html", message=message)
    data = message.to_json()
    if kind != "message-created":
        # Its earlier events show it as it is now: no edited or deleted text stays stored.
        events.restate(message.id, html, data)
    return events.record(
        kind, message.conversation_id, recipients, html=html, data=data, message_id=message.id
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


def attachment_for(user: User, attachment_id: int, *, thumbnail: bool = False) -> Attachment:
    """An attachment the user may fetch: 404 unless they are in its message's conversation."""
    row = db.session.execute(
        sa.select(Attachment, Message.conversation_id)
        .join(Message, Message.id == Attachment.message_id)
        .where(Attachment.id == attachment_id)
    ).first()
    if row is None or (thumbnail and not row.Attachment.thumbnail_name):
        raise NotFound("Attachment not found.")
    try:
        conversation_for(user, row.conversation_id, members=False)
    except NotFound:
        raise NotFound("Attachment not found.") from None
    return row.Attachment


def editable(user: User, message_id: int) -> Message:
    """A message this user may edit now: their own text or caption (not a call's entry), not
    deleted, within EDIT_WINDOW_MINUTES of sending. Outsiders get 404, others 403 or 409."""
    return _editable(user, message_id)[0]


def _editable(user: User, message_id: int) -> tuple[Message, Conversation]:
    message, conversation = message_for(user, message_id)
    if message.user_id != user.id:
        raise Forbidden("You can only edit your own messages.")
    if message.type == "call":
        raise Forbidden("Call entries cannot be edited.")
    if message.is_deleted:
        raise Conflict("This message was deleted.")
    window = current_app.config["EDIT_WINDOW_MINUTES"]
    if window and utcnow() - message.created_at > timedelta(minutes=window):
        raise Conflict(f"Messages can be edited for {window} minutes after sending.", field="body")
    return message, conversation


def edit_message(user: User, message_id: int, body: str | None) -> Message:
    """The author changes a message's text (a file's caption; the file stays as it was). The
    same text again changes nothing and tells no one."""
    message, conversation = _editable(user, message_id)
    body = clean_body(body, required=message.media is None)
    if body == message.body:
        return message
    message.body = body
    message.edited_at = message.updated_at = utcnow()
    recipients = member_ids(conversation)
    record_mentions(message, recipients)
    search.index(message)
    event = message_event("message-updated", message, recipients)
    updates = _replies_shown_again(message, recipients)  # their quotes show the new text
    db.session.commit()
    for published in (event, *updates):
        events.publish(published)
    return message


def _replies_shown_again(message: Message, recipients: list[int]) -> list[events.Envelope]:
    """A message-updated event for each reply to `message` still shown, whose quote changed
    with it: every open tab gets them again."""
    replies = db.session.scalars(
        sa.select(Message)
        .where(Message.reply_to_id == message.id, Message.deleted_at.is_(None))
        .options(*_SHOWN_WITH)
    )
    return [message_event("message-updated", reply, recipients) for reply in replies]


def delete_message(user: User, message_id: int) -> Message:
    message, conversation = message_for(user, message_id)
    if message.user_id != user.id:
        raise Forbidden("You can only delete your own messages.")
    if not message.is_deleted:
        attachment = message.media
        files = attachment.stored_names if attachment else []
        if attachment:
            db.session.delete(attachment)
        message.deleted_at = utcnow()
        message.body = ""
        # Its reactions and mentions go with its text, from every view and the database.
        db.session.execute(sa.delete(Reaction).where(Reaction.message_id == message.id))
        db.session.execute(sa.delete(Mention).where(Mention.message_id == message.id))
        set_committed_value(message, "reactions", [])
        set_committed_value(message, "mentions", [])
        search.unindex(message.id)
        recipients = member_ids(conversation)
        event = message_event("message-deleted", message, recipients)
        # Its replies quote it no more: "Original message deleted" where the quote was.
        updates = _replies_shown_again(message, recipients)
        db.session.commit()
        # Only once the row is gone: a failed commit leaves the message and its file as they were.
        media.discard(files)
        for published in (event, *updates):
            events.publish(published)
    return message
