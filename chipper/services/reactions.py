"""Reactions: one emoji from one person on one message, given and taken back by a toggle."""

import emoji as emoji_data
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chipper.extensions import db
from chipper.models import Message, Reaction, User
from chipper.realtime import events
from chipper.services import Conflict, Invalid
from chipper.services.conversations import member_ids
from chipper.services.messages import message_event, message_for

# Distinct emoji under one message; more would push its text off a phone's screen.
MAX_DISTINCT = 20
# The quick choices in every message's menu (any other emoji can be typed).
PALETTE = ("👍", "❤️", "😂", "😮", "😢", "🙏")


def clean_emoji(value: str | None) -> str:
    """One emoji (a grapheme cluster such as a flag, a skin tone or a family counts as one), in
    its fully qualified form, so that "❤" and "❤️" are the same reaction."""
    value = (value or "").strip()
    if not value:
        raise Invalid("Choose an emoji to react with.", field="emoji")
    if len(value) > 16 or not emoji_data.is_emoji(value):
        raise Invalid("A reaction is one emoji.", field="emoji")
    return emoji_data.emojize(emoji_data.demojize(value))


def toggle_reaction(user: User, message_id: int, value: str | None) -> Message:
    """Gives the user's reaction, or takes it back when they had given it. Everyone in the
    conversation sees the message again with its new counts."""
    message, conversation = message_for(user, message_id)  # outsiders: 404, before the emoji
    if message.is_deleted:
        raise Conflict("This message was deleted.")
    if message.type == "call":
        raise Conflict("Call entries take no reactions.")
    chosen = clean_emoji(value)
    mine = db.session.scalar(
        sa.select(Reaction).where(
            Reaction.message_id == message.id,
            Reaction.user_id == user.id,
            Reaction.emoji == chosen,
        )
    )
    if mine is not None:
        db.session.delete(mine)
    else:
        given = {reaction.emoji for reaction in message.reactions}
        if chosen not in given and len(given) >= MAX_DISTINCT:
            raise Invalid(
                f"A message takes at most {MAX_DISTINCT} different reactions: "
                "add to one already there.",
                field="emoji",
            )
        db.session.add(Reaction(message_id=message.id, user_id=user.id, emoji=chosen))
    try:
        db.session.flush()
    except IntegrityError:
        # The same reaction from this user's other tab, a moment earlier: it stands.
        db.session.rollback()
        return message_for(user, message_id)[0]
    db.session.expire(message, ["reactions"])
    event = message_event("message-updated", message, member_ids(conversation))
    db.session.commit()
    events.publish(event)
    return message
