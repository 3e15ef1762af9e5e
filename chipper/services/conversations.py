"""Conversations: who may see them, creating, renaming, membership, read state."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from chipper.extensions import db
from chipper.models import Conversation, Mention, Message, Participant, Reaction, User, utcnow
from chipper.realtime import events
from chipper.services import Forbidden, Invalid, NotFound, text

GROUP_NAME_MAX = 100


@dataclass
class ConversationSummary:
    """One row of a user's conversation list."""

    conversation: Conversation
    last_message: Message | None
    unread_count: int
    # An unread message names the viewer (the list shows "@" by the count).
    mentioned: bool = False


# Statements of the hot paths (every send, every page) are built once: building a select
# costs more than running it from SQLAlchemy's compiled cache.
_VISIBLE = (
    sa.select(Conversation)
    .join(Participant)
    .where(Conversation.id == sa.bindparam("cid"), Participant.user_id == sa.bindparam("uid"))
)
_VISIBLE_WITH_MEMBERS = _VISIBLE.options(
    selectinload(Conversation.participants).selectinload(Participant.user)
)
_MEMBER_IDS = sa.select(Participant.user_id).where(
    Participant.conversation_id == sa.bindparam("cid")
)
_others = sa.orm.aliased(Participant)
# The member ids in the same statement, as "3,8,12": group_concat / string_agg by database.
_VISIBLE_WITH_IDS = _VISIBLE.add_columns(
    sa.select(sa.func.aggregate_strings(sa.cast(_others.user_id, sa.String), ","))
    .where(_others.conversation_id == Conversation.id)
    .scalar_subquery()
)


@dataclass(frozen=True, slots=True)
class Membership:
    """A conversation someone may use, with who is in it: what a send needs."""

    conversation: Conversation
    member_ids: list[int]

    @classmethod
    def of(cls, conversation: Conversation) -> "Membership":
        return cls(conversation, member_ids(conversation))


def conversation_for(user: User, conversation_id: int, *, members: bool = True) -> Conversation:
    """The one access check for conversations: participants only, everyone else gets 404.

    `members=False` leaves out the participants and their users (two more queries and a
    dozen ORM objects) for callers that need the conversation alone.
    """
    params = {"cid": conversation_id, "uid": user.id}
    statement = _VISIBLE_WITH_MEMBERS if members else _VISIBLE
    conversation = db.session.scalar(statement, params)
    if conversation is None:
        raise NotFound("Conversation not found.")
    return conversation


def membership_for(user: User, conversation_id: int) -> Membership:
    """conversation_for() for sending: the member ids come in the same statement, without
    the participants and their users."""
    row = db.session.execute(_VISIBLE_WITH_IDS, {"cid": conversation_id, "uid": user.id}).first()
    if row is None:
        raise NotFound("Conversation not found.")
    return Membership(row[0], [int(uid) for uid in row[1].split(",")])


def _unread_filter(user_id):
    """Messages by someone else, not deleted, newer than the participant's last read time."""
    return sa.and_(
        sa.func.coalesce(Message.user_id, 0) != user_id,
        Message.deleted_at.is_(None),
        sa.or_(Participant.last_read_at.is_(None), Message.created_at > Participant.last_read_at),
    )


# The list and the unread badge are read on every page: built once, like the statements above.
_last_id = (
    sa.select(sa.func.max(Message.id))
    .where(Message.conversation_id == Conversation.id)
    .correlate(Conversation)
    .scalar_subquery()
)
_unread = (
    sa.select(sa.func.count(Message.id))
    .where(Message.conversation_id == Conversation.id, _unread_filter(sa.bindparam("uid")))
    .correlate(Conversation, Participant)
    .scalar_subquery()
)
_mentioned = (
    sa.select(Mention.message_id)
    .join(Message, Message.id == Mention.message_id)
    .where(
        Message.conversation_id == Conversation.id,
        Mention.user_id == sa.bindparam("uid"),
        _unread_filter(sa.bindparam("uid")),
    )
    .correlate(Conversation, Participant)
    .exists()
)
_LIST = (
    sa.select(Conversation, Message, _unread, _mentioned)
    .join(
        Participant,
        sa.and_(
            Participant.conversation_id == Conversation.id,
            Participant.user_id == sa.bindparam("uid"),
        ),
    )
    .outerjoin(Message, Message.id == _last_id)
    .options(
        selectinload(Conversation.participants).selectinload(Participant.user),
        selectinload(Message.attachment),
        selectinload(Message.reply_to).selectinload(Message.author),
    )
    .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
)
_TOTAL_UNREAD = (
    sa.select(sa.func.count(Message.id))
    .join(
        Participant,
        sa.and_(
            Participant.conversation_id == Message.conversation_id,
            Participant.user_id == sa.bindparam("uid"),
        ),
    )
    .where(_unread_filter(sa.bindparam("uid")))
)


# For the JSON list, whose last messages carry their reactions and mentions (four queries more).
_LIST_IN_FULL = _LIST.options(
    selectinload(Message.reactions).selectinload(Reaction.user),
    selectinload(Message.mentions).selectinload(Mention.user),
)


def list_conversations(user: User, *, in_full: bool = False) -> list[ConversationSummary]:
    """Latest activity first. Six queries however many conversations there are (the last
    messages' files, and the messages they answer with their authors, in one each);
    `in_full` also loads what the last messages' JSON shows."""
    rows = db.session.execute(_LIST_IN_FULL if in_full else _LIST, {"uid": user.id}).all()
    return [ConversationSummary(c, m, n, bool(at)) for c, m, n, at in rows]


def total_unread(user: User) -> int:
    return db.session.scalar(_TOTAL_UNREAD, {"uid": user.id})


def member_ids(conversation: Conversation) -> list[int]:
    if "participants" not in sa.inspect(conversation).unloaded:
        return [p.user_id for p in conversation.participants]
    # Loaded without its members: the ids alone rather than every participant.
    return list(db.session.scalars(_MEMBER_IDS, {"cid": conversation.id}))


def contact_ids(user_id: int) -> list[int]:
    """Everyone who shares a conversation with the user: who sees their presence."""
    mine = sa.select(Participant.conversation_id).where(Participant.user_id == user_id)
    return list(
        db.session.scalars(
            sa.select(Participant.user_id)
            .where(Participant.conversation_id.in_(mine), Participant.user_id != user_id)
            .distinct()
        )
    )


def _summary_data(conversation: Conversation) -> dict:
    return {"id": conversation.id, "type": conversation.type, "name": conversation.name}


def _existing_users(user_ids: list[int]) -> list[User]:
    ids = set(user_ids)
    users = list(db.session.scalars(sa.select(User).where(User.id.in_(ids)))) if ids else []
    if len(users) != len(ids):
        raise Invalid("Some of the chosen people do not exist.", field="user_ids")
    return users


def start_private(user: User, other_id: int) -> tuple[Conversation, bool]:
    """The private conversation between the two, created if needed. Returns (it, created)."""
    if other_id == user.id:
        raise Invalid("Choose someone other than yourself.", field="user_ids")
    (other,) = _existing_users([other_id])
    key = Conversation.private_key_for(user.id, other.id)
    existing = db.session.scalar(sa.select(Conversation).where(Conversation.private_key == key))
    if existing is not None:
        return existing, False
    conversation = Conversation(type="private", created_by=user.id, private_key=key)
    conversation.participants = [Participant(user=user), Participant(user=other)]
    db.session.add(conversation)
    try:
        db.session.flush()
        event = events.record(
            "conversation-created",
            conversation.id,
            [user.id, other.id],
            data=_summary_data(conversation),
        )
        db.session.commit()
    except IntegrityError:
        # Another request created it between our look-up and our insert: use theirs.
        db.session.rollback()
        existing = db.session.scalar(sa.select(Conversation).where(Conversation.private_key == key))
        if existing is None:
            raise
        return existing, False
    events.publish(event)
    return conversation, True


def start_conversation(
    user: User, kind: str, name: str | None, user_ids: list[int]
) -> tuple[Conversation, bool]:
    """A private message (exactly one other person) or a group chat. Returns (it, created)."""
    if kind == "private":
        if len(user_ids) != 1:
            raise Invalid("Choose exactly one person for a private message.", field="user_ids")
        return start_private(user, user_ids[0])
    if kind == "group":
        return create_group(user, name, user_ids), True
    raise Invalid("Choose a private message or a group chat.", field="type")


def clean_group_name(name: str | None) -> str:
    name = text.one_line(name or "").strip()
    if not name:
        raise Invalid("Give the group a name.", field="name")
    if len(name) > GROUP_NAME_MAX:
        raise Invalid(f"Group names are at most {GROUP_NAME_MAX} characters.", field="name")
    return name


def create_group(user: User, name: str | None, user_ids: list[int]) -> Conversation:
    name = clean_group_name(name)
    others = [u for u in _existing_users(user_ids) if u.id != user.id]
    if not others:
        raise Invalid("Choose at least one other person for the group.", field="user_ids")
    conversation = Conversation(type="group", name=name, created_by=user.id)
    conversation.participants = [Participant(user=u) for u in [user, *others]]
    db.session.add(conversation)
    db.session.flush()
    event = events.record(
        "conversation-created",
        conversation.id,
        member_ids(conversation),
        data=_summary_data(conversation),
    )
    db.session.commit()
    events.publish(event)
    return conversation


def _require_group(conversation: Conversation, action: str) -> None:
    if not conversation.is_group:
        raise Forbidden(f"Only group chats can {action}.")


def rename_conversation(user: User, conversation: Conversation, name: str | None) -> Conversation:
    _require_group(conversation, "be renamed")
    conversation.name = clean_group_name(name)
    event = _updated(conversation)
    db.session.commit()
    events.publish(event)
    return conversation


def _updated(conversation: Conversation) -> dict:
    """Name or members changed: pages refresh their header and lists."""
    (envelope,) = events.record_many(_updated_spec(conversation))
    return envelope


def _updated_spec(conversation: Conversation) -> events.Spec:
    ids = member_ids(conversation)
    data = {**_summary_data(conversation), "participants": ids}
    return events.Spec("conversation-updated", conversation.id, ids, data=data)


def add_participants(user: User, conversation: Conversation, user_ids: list[int]) -> list[User]:
    _require_group(conversation, "take new members")
    if not user_ids:
        raise Invalid("Choose at least one person to add.", field="user_ids")
    present = {p.user_id for p in conversation.participants}
    new = [u for u in _existing_users(user_ids) if u.id not in present]
    if not new:
        return []
    for u in new:
        conversation.participants.append(Participant(user=u))
    try:
        db.session.flush()
        event = _updated(conversation)
        db.session.commit()
    except IntegrityError:
        # Someone else added the same person a moment ago; they are a member either way.
        db.session.rollback()
        return []
    events.publish(event)
    return new


def remove_participant(user: User, conversation: Conversation, user_id: int) -> None:
    """Leave (your own id) or, for the group's creator, remove someone else."""
    _require_group(conversation, "be left")
    if user_id != user.id and conversation.created_by != user.id:
        raise Forbidden("Only the person who created the group can remove members.")
    participant = next((p for p in conversation.participants if p.user_id == user_id), None)
    if participant is None:
        raise NotFound("That person is not in this conversation.")
    conversation.participants.remove(participant)
    db.session.flush()
    # The one who left stops getting this conversation's events at once: they are not a
    # recipient of anything recorded from here on.
    # One call for both events: each recipient's sequence is locked once, in id order.
    removed, updated = events.record_many(
        events.Spec(
            "conversation-removed",
            conversation.id,
            [user_id],
            html=events.render("conversations/_removed.html", left=user_id == user.id),
            data={"removed_user_id": user_id},
        ),
        _updated_spec(conversation),
    )
    db.session.commit()
    events.publish(removed, updated)


def mark_read(user: User, conversation: Conversation, newest: datetime | None) -> None:
    """Viewing the latest messages marks the conversation read (one write, only when needed)."""
    participant = next(p for p in conversation.participants if p.user_id == user.id)
    # Read up to the newest message shown, not "now": one that arrives while the page is
    # being built stays unread.
    if newest is not None and (
        participant.last_read_at is None or newest > participant.last_read_at
    ):
        participant.last_read_at = newest
        published = [events.record("read", conversation.id, [user.id])]
        others = [p.user_id for p in conversation.participants if p.user_id != user.id]
        if user.read_receipts and others:
            published.append(events.record("conversation-read", conversation.id, others))
        db.session.commit()
        for event in published:
            events.publish(event)


def newest_message_time(conversation: Conversation) -> datetime | None:
    return db.session.scalar(
        sa.select(sa.func.max(Message.created_at)).where(Message.conversation_id == conversation.id)
    )


def signal_typing(user: User, conversation: Conversation) -> None:
    """Live only: nothing is stored, and a typing notice is never replayed."""
    others = [uid for uid in member_ids(conversation) if uid != user.id]
    html = events.render("conversations/_typing.html", name=user.name)
    events.publish(events.ephemeral("typing", conversation.id, others, html=html))


_conversations = Conversation.__table__
_TOUCH = (
    sa.update(_conversations)
    .where(_conversations.c.id == sa.bindparam("cid"))
    .values(updated_at=sa.bindparam("now"))
)


def touch(conversation: Conversation, now: datetime | None = None) -> None:
    """Latest activity: moves the conversation to the top of everyone's list."""
    now = now or utcnow()
    # A plain UPDATE, run now: changing the attribute would cost a unit-of-work flush. The
    # loaded object is kept in step without being marked as changed.
    db.session.execute(_TOUCH, {"cid": conversation.id, "now": now})
    set_committed_value(conversation, "updated_at", now)
