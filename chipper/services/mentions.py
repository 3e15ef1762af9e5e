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
    written: dict[int, str] = {}
    people: dict[int, User] = {}
    if "@" in message.body:
        people = {
            u.id: u for u in db.session.scalars(sa.select(User).where(User.id.in_(member_ids)))
        }
        names = formatting.names_of({i: u.name for i, u in people.items()})
        written = formatting.find_mentions(message.body, names)
    kept = {m.user_id: m for m in message.mentions}
    if {i: m.name for i, m in kept.items()} == written and list(kept) == list(written):
        return
    # A mention still there is the same row: deleting and inserting it again in one flush
    # would collide on its key.
    mentions = []
    for user_id, name in written.items():
        mention = kept.get(user_id) or Mention(
            message_id=message.id, user_id=user_id, user=people[user_id]
        )
        mention.name = name
        mentions.append(mention)
    message.mentions = mentions
