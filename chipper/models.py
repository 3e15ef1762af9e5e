"""Tables of the seed design (users, conversations, participants, messages, attachments, calls)
and the browsers that take push notifications.

Models own small verbs and query builders; the rules that change data live in
chipper/services/.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import current_app, has_request_context, url_for
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from chipper import formatting, passwords
from chipper.extensions import db


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no time zone, so every stored time is UTC without one."""
    return datetime.now(UTC).replace(tzinfo=None)


def initials(name: str) -> str:
    """What stands for someone without a picture: "Ada Lovelace" -> "AL"."""
    parts = [p for p in (name or "").split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


def avatar_colour(user_id: int | None) -> str:
    """One of eight colour classes (css/base.css), the same for a person everywhere."""
    return f"hue-{(user_id or 0) % 8}"


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(UserMixin, Timestamps, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    # Stored lower-cased, so the unique constraint is case-insensitive on every database.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column("password", sa.String(255))
    # The number of stored events addressed to this user so far: each event takes the next
    # number (EventRecipient.seq), so a stream can tell exactly what it has not seen yet.
    event_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Admins make invite links and manage accounts; the first account is one.
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Set while an admin has deactivated the account: it cannot sign in, its messages stay.
    deactivated_at: Mapped[datetime | None]
    # Whether the others in a conversation see when this user has read it ("Seen"); off,
    # this user does not see theirs either.
    read_receipts: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    # The stored file of this user's picture (a 256 px square WebP), or None: initials show.
    avatar_name: Mapped[str | None] = mapped_column(sa.String(64))

    # Not columns: the sign-in this object was loaded for. Flask-Login keeps get_id() in the
    # session and the remember-me cookie, so both carry that sign-in's random token, never
    # the user id (see chipper.services.sessions).
    login_token = None
    session_id = None

    def get_id(self) -> str | None:
        return self.login_token

    @property
    def is_active(self) -> bool:
        """Flask-Login signs in only active users."""
        return self.deactivated_at is None

    def set_password(self, password: str) -> None:
        self.password_hash = passwords.make_hash(password)

    def check_password(self, password: str) -> tuple[bool, bool]:
        """(whether it matches, whether the stored hash is weaker than the config asks)."""
        return passwords.verify(self.password_hash, password)

    @property
    def avatar_url(self) -> str | None:
        """The picture's address; the stored name in it changes with each new picture, so a
        browser may keep one for good."""
        if not self.avatar_name:
            return None
        values = {"user_id": self.id, "v": self.avatar_name.split(".")[0][:12]}
        if has_request_context():
            return url_for("people.avatar", **values)
        with current_app.test_request_context("/"):  # a job, the push sender's thread
            return url_for("people.avatar", **values)

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "avatar": self.avatar_url}

    @staticmethod
    def normalize_email(email: str) -> str:
        return email.strip().lower()


class Conversation(Timestamps, db.Model):
    __tablename__ = "conversations"
    __table_args__ = (sa.CheckConstraint("type IN ('private', 'group')", name="type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(10))
    name: Mapped[str | None] = mapped_column(sa.String(100))
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    # "<low user id>:<high user id>" for private conversations, NULL for groups: the unique
    # constraint makes a second private conversation for the same pair impossible, even when
    # two requests race.
    private_key: Mapped[str | None] = mapped_column(sa.String(41), unique=True)
    # updated_at doubles as "latest activity": sending a message touches it.

    participants: Mapped[list[Participant]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", passive_deletes=True
    )
    creator: Mapped[User | None] = relationship(foreign_keys=[created_by])

    @property
    def is_group(self) -> bool:
        return self.type == "group"

    @staticmethod
    def private_key_for(a: int, b: int) -> str:
        low, high = sorted((a, b))
        return f"{low}:{high}"

    def members(self) -> list[User]:
        return sorted((p.user for p in self.participants), key=lambda u: (u.name.lower(), u.id))

    def title_for(self, viewer: User) -> str:
        """The group's name, or the other person's name in a private conversation."""
        if self.is_group:
            return self.name or "Group"
        other = self.other_member(viewer)
        return other.name if other else viewer.name

    def other_member(self, viewer: User) -> User | None:
        """The person the viewer is talking to (None in a group, or if they are alone)."""
        if self.is_group:
            return None
        return next((p.user for p in self.participants if p.user_id != viewer.id), None)

    def has_member(self, user_id: int) -> bool:
        return any(p.user_id == user_id for p in self.participants)


class Participant(Timestamps, db.Model):
    __tablename__ = "conversation_participants"
    __table_args__ = (sa.UniqueConstraint("conversation_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    last_read_at: Mapped[datetime | None] = mapped_column()
    # A muted conversation sends this member no push notifications for its messages (calls
    # still ring); the page still updates live and counts them unread.
    muted: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    conversation: Mapped[Conversation] = relationship(back_populates="participants")
    user: Mapped[User] = relationship()


class Message(Timestamps, db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        sa.Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        sa.Index("ix_messages_conversation_id_created_at", "conversation_id", "created_at"),
        # The same composer key twice from one user is one message (NULLs never collide).
        sa.UniqueConstraint("user_id", "client_key", name="uq_messages_user_id_client_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE")
    )
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    # Made when the composer was rendered (or an API client's Idempotency-Key): a send
    # retried, double-clicked or replayed after being offline finds the first message.
    client_key: Mapped[str | None] = mapped_column(sa.String(64))
    # Not a column: set on a message found again by its client key (the send was a repeat).
    replayed = False
    body: Mapped[str] = mapped_column(sa.Text, default="")
    type: Mapped[str] = mapped_column(sa.String(10), default="text")
    file_path: Mapped[str | None] = mapped_column(sa.String(255))
    # A "call" message is the timeline entry of a finished call ("Missed video call").
    call_id: Mapped[int | None] = mapped_column(sa.ForeignKey("calls.id", ondelete="SET NULL"))
    # A deleted message stays as a tombstone ("message deleted") with its body wiped.
    deleted_at: Mapped[datetime | None] = mapped_column()
    # When its author last changed the text ("edited"); None if never.
    edited_at: Mapped[datetime | None] = mapped_column()
    # The message of the same conversation this one answers: its quote shows above the text.
    reply_to_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )

    author: Mapped[User | None] = relationship()
    reply_to: Mapped[Message | None] = relationship(remote_side=[id])
    # Read through `media`, which never loads it for a text message.
    attachment: Mapped[Attachment | None] = relationship(back_populates="message")
    # Who reacted with what, oldest first (a chip's place is its first reaction's).
    reactions: Mapped[list[Reaction]] = relationship(
        order_by="Reaction.id", cascade="all, delete-orphan", passive_deletes=True
    )
    # The participants its text names with @, as they were when it was sent or edited.
    mentions: Mapped[list[Mention]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def media(self) -> Attachment | None:
        """The message's file; text messages and tombstones have none (and cost no query)."""
        if self.type == "text" or self.is_deleted:
            return None
        return self.attachment

    @property
    def preview(self) -> str:
        """For the conversation list and notifications: the text as read (without its
        formatting marks), or what kind of file was sent."""
        text = formatting.plain_text(self.body)
        label = PREVIEW_LABELS.get(self.type)
        if label is None:
            return text
        return f"{label}: {text}" if text else label

    @property
    def mention_names(self) -> dict[str, int]:
        """The names its mentions are written with (lowercased), to their user ids: as the
        text wrote them, and the people's present names."""
        names = formatting.names_of({m.user_id: m.user.name for m in self.mentions if m.user})
        return {**names, **{m.name: m.user_id for m in self.mentions if m.name}}

    @property
    def excerpt(self) -> str:
        """The first line, short: what a reply quotes."""
        line = self.preview.strip().split("\n", 1)[0]
        return line if len(line) <= EXCERPT else line[: EXCERPT - 1].rstrip() + "…"

    def quote_json(self) -> dict | None:
        original = self.reply_to if self.reply_to_id is not None else None
        if original is None:
            return None
        return {
            "id": original.id,
            "author_name": original.author.name if original.author else None,
            "excerpt": "" if original.is_deleted else original.excerpt,
            "deleted": original.is_deleted,
        }

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "user_id": self.user_id,
            "author_name": self.author.name if self.author else None,
            "body": self.body,
            "type": self.type,
            "call_id": self.call_id,
            "deleted": self.is_deleted,
            "created_at": iso(self.created_at),
            "edited_at": iso(self.edited_at),
            "reply_to": self.quote_json(),
            "attachment": self.media.to_json() if self.media else None,
            "mentions": [m.user_id for m in self.mentions],
            "reactions": [
                {"emoji": chip.emoji, "count": len(chip.user_ids), "user_ids": chip.user_ids}
                for chip in self.reaction_chips
            ],
        }

    @property
    def reaction_chips(self) -> list[ReactionChip]:
        """The reactions grouped by emoji, in the order each was first given."""
        chips: dict[str, ReactionChip] = {}
        for reaction in self.reactions:
            chip = chips.setdefault(reaction.emoji, ReactionChip(reaction.emoji, [], []))
            chip.user_ids.append(reaction.user_id)
            chip.names.append(reaction.user.name if reaction.user else "Former member")
        return list(chips.values())


@dataclass
class ReactionChip:
    """One emoji under a message: who gave it (ids and names, in order)."""

    emoji: str
    user_ids: list[int]
    names: list[str]


class Mention(db.Model):
    """A participant a message names with @ (notified, and shown the mention strongly)."""

    __tablename__ = "message_mentions"

    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # The name the text names them by (lowercased), still shown as a mention after a rename.
    name: Mapped[str | None] = mapped_column(sa.String(80))

    user: Mapped[User] = relationship()


class Reaction(db.Model):
    """One person's emoji on one message; the same one twice is one (a toggle takes it back)."""

    __tablename__ = "message_reactions"
    __table_args__ = (sa.UniqueConstraint("message_id", "user_id", "emoji"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    # One grapheme cluster: a flag or a family can be several code points (and 30 bytes).
    emoji: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()


EXCERPT = 100  # characters of a quoted message
# The largest id a row can have: ids are 32-bit integers on PostgreSQL. A number from a URL
# or a form is kept within it before it reaches a query.
MAX_ID = 2**31 - 1
PREVIEW_LABELS = {"image": "Photo", "audio": "Voice message", "video": "Video", "file": "File"}


class Attachment(db.Model):
    """The one file of a message. Its kind (the message's type) and content type come from
    the file's bytes; the files themselves live under UPLOAD_FOLDER with names we made up."""

    __tablename__ = "attachments"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('image', 'audio', 'video', 'file')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    kind: Mapped[str] = mapped_column(sa.String(10))
    content_type: Mapped[str] = mapped_column(sa.String(100))
    stored_name: Mapped[str] = mapped_column(sa.String(64))
    # What the sender called it, cleaned: shown and offered as the download name, never a path.
    original_name: Mapped[str] = mapped_column(sa.String(255))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    # Images only: the stored (upright) size, so the page reserves the space, and a thumbnail.
    width: Mapped[int | None] = mapped_column()
    height: Mapped[int | None] = mapped_column()
    thumbnail_name: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    message: Mapped[Message] = relationship(back_populates="attachment")

    @property
    def stored_names(self) -> list[str]:
        return [name for name in (self.stored_name, self.thumbnail_name) if name]

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "content_type": self.content_type,
            "name": self.original_name,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "url": url_for("attachments.show", attachment_id=self.id),
            "thumbnail_url": (
                url_for("attachments.thumbnail", attachment_id=self.id)
                if self.thumbnail_name
                else None
            ),
        }


class Call(Timestamps, db.Model):
    __tablename__ = "calls"
    __table_args__ = (
        sa.CheckConstraint("type IN ('audio', 'video')", name="type"),
        sa.Index("ix_calls_conversation_id_status", "conversation_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE")
    )
    initiated_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(sa.String(10))
    status: Mapped[str] = mapped_column(sa.String(12), default="ringing")
    screen_sharing: Mapped[bool] = mapped_column(default=False)
    # Ringing since created_at; started_at is when someone answered, ended_at when it finished.
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    # The conversation's id while the call is ringing or active, NULL once it is over: the
    # unique constraint allows one live call per conversation, even when two starts race.
    live_conversation_id: Mapped[int | None] = mapped_column(unique=True)

    members: Mapped[list[CallMember]] = relationship(
        back_populates="call",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="CallMember.id",
    )
    caller: Mapped[User | None] = relationship(foreign_keys=[initiated_by])
    conversation: Mapped[Conversation] = relationship()

    LIVE = ("ringing", "active")

    # Reads compute where the ring timeout has got to; only the timeout's job
    # (services/calls/ringing.py) records it, so opening a page never writes.

    @property
    def rings_until(self) -> datetime:
        """When the call stops ringing: CALL_RING_SECONDS after it started."""
        return self.created_at + timedelta(seconds=current_app.config["CALL_RING_SECONDS"])

    @property
    def rang_out(self) -> bool:
        """Whether its ringing time is over (answered or not)."""
        return self.created_at is not None and utcnow() >= self.rings_until

    @property
    def current_status(self) -> str:
        """The status now: a call still ringing past its deadline is missed, even before the
        timeout's job has recorded it."""
        if self.status == "ringing" and self.rang_out:
            return "missed"
        return self.status

    @property
    def is_ringing(self) -> bool:
        return self.current_status == "ringing"

    @property
    def is_live(self) -> bool:
        return self.current_status in self.LIVE

    @property
    def duration(self) -> int | None:
        """Seconds between the answer and the end; None for a call nobody answered."""
        if self.started_at is None or self.ended_at is None:
            return None
        return int((self.ended_at - self.started_at).total_seconds())

    @property
    def summary(self) -> str:
        """The timeline line: "Missed video call", "Audio call, 3:12"."""
        kind = self.type.capitalize()
        status = self.current_status
        if status == "ended" and self.duration is not None:
            minutes, seconds = divmod(self.duration, 60)
            hours, minutes = divmod(minutes, 60)
            length = f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"
            return f"{kind} call, {length}"
        label = {
            "ringing": f"{kind} call ringing",
            "active": f"{kind} call in progress",
            "missed": f"Missed {self.type} call",
            "declined": f"Declined {self.type} call",
            "cancelled": f"Cancelled {self.type} call",
        }
        return label.get(status, f"{kind} call")

    def member(self, user_id: int) -> CallMember | None:
        return next((m for m in self.members if m.user_id == user_id), None)

    def joined_ids(self) -> list[int]:
        return [m.user_id for m in self.members if m.current_state == "joined"]

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "type": self.type,
            "status": self.current_status,
            "initiated_by": self.initiated_by,
            "created_at": iso(self.created_at),
            "rings_until": iso(self.rings_until),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration": self.duration,
            "summary": self.summary,
            "screen_sharing": self.screen_sharing,
            # A group's name, so a ringing call can say where it comes from.
            "conversation_name": self.conversation.name if self.conversation.is_group else None,
            "members": [m.to_json() for m in self.members],
        }


class CallMember(db.Model):
    """Who a call rings and who is in it: invited (ringing for them), joined, declined, left."""

    __tablename__ = "call_participants"
    __table_args__ = (
        sa.UniqueConstraint("call_id", "user_id"),
        sa.CheckConstraint("state IN ('invited', 'joined', 'declined', 'left')", name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(sa.ForeignKey("calls.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(sa.String(10))
    joined_at: Mapped[datetime | None] = mapped_column()
    left_at: Mapped[datetime | None] = mapped_column()
    # Whether this member is showing their screen; the call's own screen_sharing says whether
    # anyone is.
    screen_sharing: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    call: Mapped[Call] = relationship(back_populates="members")
    user: Mapped[User] = relationship()

    @property
    def current_state(self) -> str:
        """The state now, like Call.current_status: past the call's ringing time, whoever it
        still rang for in an answered call has left unanswered, and whoever was in a call
        nobody answered has left it (it is missed)."""
        call = self.call
        if call.status in Call.LIVE and call.rang_out:
            if self.state == "invited" and call.status == "active":
                return "left"
            if self.state == "joined" and call.status == "ringing":
                return "left"
        return self.state

    @property
    def label(self) -> str:
        """What the call page says of this member: ringing, in the call, declined..."""
        state = self.current_state
        if state == "invited":
            return "ringing" if self.call.is_live else "no answer"
        if state == "joined":
            return "sharing their screen" if self.screen_sharing else "in the call"
        if state == "left" and self.joined_at is None:
            return "no answer"
        return state

    def to_json(self) -> dict:
        return {
            "user_id": self.user_id,
            "name": self.user.name,
            "avatar": self.user.avatar_url,
            "state": self.current_state,
            "screen_sharing": self.screen_sharing,
            "joined_at": iso(self.joined_at),
            "left_at": iso(self.left_at),
        }


class PushSubscription(db.Model):
    """One browser that takes Web Push notifications for a user: where to send them (the push
    service's endpoint, unique to that browser profile) and the keys to encrypt them with."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(sa.String(2048), unique=True)
    # The browser's P-256 public key (65 bytes) and auth secret (16 bytes), base64url.
    p256dh: Mapped[str] = mapped_column(sa.String(100))
    auth: Mapped[str] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The last push the push service took for it.
    last_used_at: Mapped[datetime | None] = mapped_column()

    def to_json(self) -> dict:
        return {"id": self.id, "endpoint": self.endpoint}


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") + "Z" if value else None


# Event ids order everything a stream delivers; SQLite needs INTEGER for an auto-incrementing
# primary key.
EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Event(db.Model):
    """A change that streams deliver, stored in the same transaction as the change itself.

    Live streams get it through pub/sub after the commit; a stream that reconnects replays the
    ones it missed from this table, so nothing is lost in between.
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    conversation_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE")
    )
    # The message a message-* event shows: its later changes restate the event (store.restate).
    message_id: Mapped[int | None] = mapped_column(index=True)
    # {"html": viewer-neutral partial, "data": JSON form for API clients}
    payload: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    recipients: Mapped[list[EventRecipient]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class EventRecipient(db.Model):
    """Who an event is for, named explicitly when it is recorded, and its place in that
    user's sequence: 1, 2, 3... with no gaps, in commit order (the user's row is locked while
    a number is taken). It is the SSE id, so a stream resuming after N replays N+1 onwards,
    and a live event that arrives ahead of an earlier one is held until the gap is filled."""

    __tablename__ = "event_recipients"
    # The primary key (user_id, seq) serves replay; this index serves deleting old events.
    __table_args__ = (sa.Index("ix_event_recipients_event_id", "event_id"),)

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(EventId, sa.ForeignKey("events.id", ondelete="CASCADE"))


class Invite(db.Model):
    """A link an admin made to let people register while REGISTRATION is "invite". Only the
    token's SHA-256 is stored, so a copy of the database lets nobody in."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(sa.String(200), default="", server_default="")
    # None: any number of people may use it.
    max_uses: Mapped[int | None]
    uses: Mapped[int] = mapped_column(default=0, server_default="0")
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    creator: Mapped[User | None] = relationship()

    def problem(self, now: datetime) -> str | None:
        """Why the link no longer lets anyone in, or None while it does."""
        if self.revoked_at is not None:
            return "This invite link was withdrawn."
        if self.expires_at is not None and self.expires_at <= now:
            return "This invite link has expired."
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "This invite link has been used already."
        return None


class LoginSession(db.Model):
    """One sign-in: the browser's cookies (the session and the remember-me cookie) carry a
    random token whose SHA-256 is stored here. Ending the row signs that browser out at its
    next request, wherever a copy of its cookies is."""

    __tablename__ = "sessions"
    __table_args__ = (sa.Index("ix_sessions_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # What the browser called itself, to tell sessions apart on the account page.
    user_agent: Mapped[str] = mapped_column(sa.String(200), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class AuditEntry(db.Model):
    """What an admin did, shown on the admin page: who, what, to whom, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    # None when the account is gone, or for the command line.
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(sa.String(40))
    target_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    detail: Mapped[str] = mapped_column(sa.String(200), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
    target: Mapped[User | None] = relationship(foreign_keys=[target_id])


class Setting(db.Model):
    """A setting an admin changed on the admin page, overriding the server's configuration
    (chipper/services/settings.py lists which ones may be changed at run time)."""

    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RefusedDraft(db.Model):
    """The text of a send refused without JavaScript, kept for the sign-in that typed it so
    the conversation page it is redirected to (Post/Redirect/Get) can put it back in the
    composer with the reason. Short-lived: the scheduler drops it after DRAFT_KEEP_SECONDS,
    and it goes when its sign-in ends."""

    __tablename__ = "refused_drafts"

    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    body: Mapped[str] = mapped_column(sa.Text)
    error: Mapped[str] = mapped_column(sa.String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
