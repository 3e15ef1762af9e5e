"""Your profile: the name and email address you are known by, and your picture. Each change
commits, then tells everyone who shares a conversation with you, and your other tabs: their
pages show the new name and picture at once (js/chipper.js, "profile-updated")."""

from __future__ import annotations

from typing import BinaryIO

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chipper import media
from chipper.extensions import db
from chipper.models import Conversation, Participant, User, avatar_colour, initials
from chipper.realtime import events
from chipper.services import Invalid, accounts
from chipper.services.conversations import contact_ids

EMAIL_NEEDS_PASSWORD = "Enter your current password to change your email address."


def update(user: User, name: str, email: str, current_password: str = "") -> list[str]:
    """A new name and email address; a new address needs the current password. Returns what
    changed ("name", "email"), nothing when the form was sent unchanged."""
    accounts.validate_name(name)
    accounts.validate_email(email)
    name, email = accounts.clean_name(name), User.normalize_email(email)
    changed = [
        field for field, new in (("name", name), ("email", email)) if getattr(user, field) != new
    ]
    if not changed:
        return []
    if "email" in changed:
        if not current_password:
            raise Invalid(EMAIL_NEEDS_PASSWORD, field="current_password")
        if not user.check_password(current_password)[0]:
            raise Invalid(accounts.WRONG_PASSWORD, field="current_password")
        taken = sa.select(User.id).where(User.email == email, User.id != user.id)
        if db.session.scalar(taken) is not None:
            raise Invalid(accounts.EMAIL_TAKEN, field="email")
    user.name, user.email = name, email
    envelope = _announce(user)
    try:
        db.session.commit()
    except IntegrityError:
        # Someone took the address between the check and the commit.
        db.session.rollback()
        raise Invalid(accounts.EMAIL_TAKEN, field="email") from None
    events.publish(envelope)
    return changed


def set_avatar(user: User, stream: BinaryIO, filename: str | None) -> None:
    """A new picture, checked and re-encoded (chipper.media.store_avatar); the old file goes
    once the new one is committed."""
    stored = media.store_avatar(stream, filename)
    _replace_avatar(user, stored)


def remove_avatar(user: User) -> bool:
    """Back to initials. False when there was no picture."""
    if not user.avatar_name:
        return False
    _replace_avatar(user, None)
    return True


def _replace_avatar(user: User, stored: str | None) -> None:
    old = user.avatar_name
    user.avatar_name = stored
    envelope = _announce(user)
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        if stored:
            media.discard([stored])
        raise
    if old:
        media.discard([old])
    events.publish(envelope)


def private_with(user: User, other: User) -> Conversation | None:
    """The two's private conversation, when there is one and `user` is in it (a read)."""
    key = Conversation.private_key_for(user.id, other.id)
    return db.session.scalar(
        sa.select(Conversation)
        .join(Participant)
        .where(Conversation.private_key == key, Participant.user_id == user.id)
    )


def card_data(user: User) -> dict:
    """What a page needs to show someone anew: name, picture (or initials on their colour)."""
    return {
        "user_id": user.id,
        "name": user.name,
        "avatar": user.avatar_url,
        "initials": initials(user.name),
        "hue": avatar_colour(user.id),
    }


def _announce(user: User) -> events.Envelope:
    recipients = [user.id, *contact_ids(user.id)]
    return events.record("profile-updated", None, recipients, data=card_data(user))
