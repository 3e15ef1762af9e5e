"""Read receipts: "Seen" under your latest message, from the others' last read times, for
those who send them (a setting on the account page, on by default)."""

from dataclasses import dataclass

import sqlalchemy as sa

from chipper.extensions import db
from chipper.models import Conversation, Message, User


@dataclass
class Receipt:
    """Who has read the viewer's latest message, when it is the conversation's latest."""

    message_id: int
    readers: list[User]


def receipt_for(user: User, conversation: Conversation) -> Receipt | None:
    """The "Seen" line under the viewer's own latest message, while no one has written
    since: the others who have read up to it and send read receipts. None when the viewer
    sends none (they see none), or when the latest message is not theirs."""
    if not user.read_receipts:
        return None
    latest = db.session.execute(
        sa.select(Message.id, Message.user_id, Message.created_at, Message.deleted_at)
        .where(Message.conversation_id == conversation.id)
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest.user_id != user.id or latest.deleted_at is not None:
        return None
    readers = [
        p.user
        for p in conversation.participants
        if p.user_id != user.id
        and p.user.read_receipts
        and p.last_read_at is not None
        and p.last_read_at >= latest.created_at
    ]
    return Receipt(latest.id, readers)
