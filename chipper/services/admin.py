"""What admins do to accounts: deactivate and reactivate them, make and remove admins. Each
action is written to the audit log in the same transaction."""

import sqlalchemy as sa

from chipper.extensions import db
from chipper.models import AuditEntry, User, utcnow
from chipper.services import Conflict, NotFound, invites, sessions

AUDIT_SHOWN = 50


def audit(actor: User | None, action: str, target: User | None = None, detail: str = "") -> None:
    """Adds an entry to the caller's transaction."""
    db.session.add(
        AuditEntry(
            actor_id=actor.id if actor is not None else None,
            action=action,
            target_id=target.id if target is not None else None,
            detail=detail[:200],
        )
    )


def _account(admin: User, user_id: int) -> User:
    invites.require_admin(admin)
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("There is no such account.")
    return user


def deactivate(admin: User, user_id: int) -> User:
    """The account can no longer sign in; its sign-ins and open streams end now, its
    messages stay."""
    user = _account(admin, user_id)
    if user.id == admin.id:
        raise Conflict("You cannot deactivate your own account.")
    if user.deactivated_at is not None:
        return user
    user.deactivated_at = utcnow()
    if user.is_admin:
        user.is_admin = False
    audit(admin, "deactivated", user)
    ended = sessions.mark_ended(user.id, sa.true())
    sessions.finish(user.id, ended)
    return user


def reactivate(admin: User, user_id: int) -> User:
    user = _account(admin, user_id)
    if user.deactivated_at is not None:
        user.deactivated_at = None
        audit(admin, "reactivated", user)
        db.session.commit()
    return user


def set_admin(admin: User, user_id: int, on: bool) -> User:
    user = _account(admin, user_id)
    if user.is_admin == on:
        return user
    if on and user.deactivated_at is not None:
        raise Conflict("Reactivate the account before making it an admin.")
    if not on:
        # The admin rows are locked (on PostgreSQL; SQLite has one writer at a time), so two
        # admins removing each other at once cannot leave the server without one.
        admins = db.session.scalars(
            sa.select(User.id).where(User.is_admin.is_(True)).with_for_update()
        ).all()
        if len(admins) <= 1:
            raise Conflict("The server needs at least one admin: make someone else one first.")
    user.is_admin = on
    audit(admin, "made admin" if on else "removed as admin", user)
    db.session.commit()
    return user


def recent_audit() -> list[AuditEntry]:
    return list(
        db.session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(AUDIT_SHOWN))
    )
