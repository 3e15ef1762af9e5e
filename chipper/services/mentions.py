"""Mentions: the participants a message's text names as @Name, kept with it so that they are
told (by push even in a muted conversation), shown the mention strongly, and see "@" by
the conversation in their list."""

import sqlalchemy as sa

from chipper import formatting
from chipper.extensions import db
from chipper.models import Mention, Message, User


def record_mentions(message: Message, member_ids: list[int]) -> None:
    """The participants the text names as @Name, kept with the message (in place of those
    of its earlier text, when edited)."""
    ids: list[int] = []
    people: dict[int, User] = {}
    if "@" in message.body:
        people = {
            u.id: u for u in db.session.scalars(sa.select(User).where(User.id.in_(member_ids)))
        }
        names = formatting.names_of({i: u.name for i, u in people.items()})
        ids = formatting.find_mentions(message.body, names)
    kept = {m.user_id: m for m in message.mentions}
    if list(kept) == ids:
        return
    # A mention still there is the same row: deleting and inserting it again in one flush
    # would collide on its key.
    message.mentions = [
        kept.get(i) or Mention(message_id=message.id, user_id=i, user=people[i]) for i in ids
    ]
