"""Invite links: the way in while REGISTRATION is "invite".

The token is shown once, when the link is made; only its SHA-256 is stored, so neither a copy
of the database nor the admin page can be used to get in.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from chipper.extensions import db
from chipper.models import AuditEntry, Invite, User, utcnow
from chipper.services import Forbidden, Invalid, NotFound, text

NOTE_MAX = 200
USES_MAX = 10_000
DAYS_MAX = 365
BAD_LINK = "This invite link is not valid. Ask whoever sent it for a new one."


@dataclass(frozen=True)
class NewInvite:
    invite: Invite
    token: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def require_admin(user: User) -> None:
    """Admin pages do not exist for anyone else."""
    if not getattr(user, "is_admin", False):
        raise NotFound("There is no such page.")


def _whole(value, name: str, largest: int, field: str) -> int:
    try:
        number = int(str(value).strip() or 0)
    except ValueError:
        raise Invalid(f"The number of {name} must be a whole number.", field=field) from None
    if not 0 <= number <= largest:
        raise Invalid(f"The number of {name} is between 0 and {largest}.", field=field)
    return number


def create_invite(admin: User | None, *, uses=1, days=7, note: str = "") -> NewInvite:
    """A new link for `uses` people (0: any number) that lasts `days` days (0: until revoked).
    `admin` is None when an operator makes it from the command line."""
    if admin is not None:
        require_admin(admin)
    uses = _whole(uses, "uses", USES_MAX, "uses")
    days = _whole(days, "days", DAYS_MAX, "days")
    note = text.one_line(note).strip()
    if len(note) > NOTE_MAX:
        raise Invalid(f"Notes are at most {NOTE_MAX} characters.", field="note")
    token = secrets.token_urlsafe(24)
    invite = Invite(
        token_hash=hash_token(token),
        created_by=admin.id if admin is not None else None,
        note=note,
        max_uses=uses or None,
        expires_at=utcnow() + timedelta(days=days) if days else None,
    )
    db.session.add(invite)
    detail = f"for {uses or 'any number of'} people, {days or 'no'} days" + (
        f": {note}" if note else ""
    )
    db.session.add(
        AuditEntry(actor_id=invite.created_by, action="made an invite", detail=detail[:200])
    )
    db.session.commit()
    return NewInvite(invite, token)


def revoke_invite(admin: User, invite_id: int) -> Invite:
    require_admin(admin)
    invite = db.session.get(Invite, invite_id)
    if invite is None:
        raise NotFound("There is no such invite link.")
    if invite.revoked_at is None:
        invite.revoked_at = utcnow()
        detail = invite.note or f"made {invite.created_at:%Y-%m-%d}"
        db.session.add(AuditEntry(actor_id=admin.id, action="withdrew an invite", detail=detail))
        db.session.commit()
    return invite


def list_invites() -> list[Invite]:
    return list(db.session.scalars(sa.select(Invite).order_by(Invite.created_at.desc())))


def find(token: str) -> Invite | None:
    if not token:
        return None
    return db.session.scalar(sa.select(Invite).where(Invite.token_hash == hash_token(token)))


def problem(token: str) -> str | None:
    """Why this token lets nobody in, or None while it does (a read: nothing is used up)."""
    invite = find(token)
    if invite is None:
        return BAD_LINK
    return invite.problem(utcnow())


def use(token: str) -> None:
    """Takes one use of the link inside the caller's transaction, or raises Forbidden. One
    guarded UPDATE, so two people racing for the last use cannot both get it."""
    now = utcnow()
    result = db.session.execute(
        sa.update(Invite)
        .where(
            Invite.token_hash == hash_token(token),
            Invite.revoked_at.is_(None),
            sa.or_(Invite.expires_at.is_(None), Invite.expires_at > now),
            sa.or_(Invite.max_uses.is_(None), Invite.uses < Invite.max_uses),
        )
        .values(uses=Invite.uses + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        reason = problem(token) or BAD_LINK
        db.session.rollback()
        raise Forbidden(reason)
