"""Sign-ins that the server can end: logging out, "sign out everywhere else", a password
change and an admin's deactivation end session rows, so the browser's cookies (or any copy of
them) stop working at their next request, and the user's open streams close at once."""

import hashlib
import secrets

import sqlalchemy as sa

from chipper.extensions import db
from chipper.models import LoginSession, User, utcnow
from chipper.realtime import events
from chipper.services import drafts

AGENT_MAX = 200

# Every signed-in request runs this: built once, it costs about half what a fresh query does.
_BY_TOKEN = (
    sa.select(User, LoginSession.id)
    .join(LoginSession, LoginSession.user_id == User.id)
    .where(
        LoginSession.token_hash == sa.bindparam("token_hash"),
        LoginSession.ended_at.is_(None),
        User.deactivated_at.is_(None),
    )
)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(user: User, user_agent: str = "") -> User:
    """A new sign-in for `user`; the user object then carries its token for Flask-Login."""
    token = secrets.token_urlsafe(32)
    row = LoginSession(user_id=user.id, token_hash=_hash(token), user_agent=user_agent[:AGENT_MAX])
    db.session.add(row)
    db.session.commit()
    user.login_token, user.session_id = token, row.id
    return user


def load(token: str) -> User | None:
    """The active user of a live sign-in, or None (ended, unknown, or the account is off)."""
    if not token or len(token) > 100:
        return None
    found = db.session.execute(_BY_TOKEN, {"token_hash": _hash(token)}).first()
    if found is None:
        return None
    user, session_id = found
    user.login_token, user.session_id = token, session_id
    return user


def end(user: User) -> None:
    """Logging out: this sign-in only."""
    if user.session_id is not None:
        finish(user.id, mark_ended(user.id, LoginSession.id == user.session_id))


def end_others(user: User) -> int:
    """Every sign-in of this user but the one making the request; how many ended."""
    return finish(user.id, mark_ended(user.id, LoginSession.id != (user.session_id or 0)))


def end_all(user_id: int) -> int:
    return finish(user_id, mark_ended(user_id, sa.true()))


def mark_ended(user_id: int, which) -> list[int]:
    """Ends the user's live sign-ins that `which` picks, in the caller's transaction."""
    return list(
        db.session.scalars(
            sa.update(LoginSession)
            .where(LoginSession.user_id == user_id, LoginSession.ended_at.is_(None), which)
            .values(ended_at=utcnow())
            .returning(LoginSession.id)
            .execution_options(synchronize_session=False)
        )
    )


def finish(user_id: int, ended: list[int]) -> int:
    """Commits, then closes the streams opened under the ended sign-ins (each knows its
    session's id)."""
    drafts.drop_for_sessions(ended)
    db.session.commit()
    if ended:
        events.publish(events.ephemeral("sessions-ended", None, [user_id], data={"ids": ended}))
    return len(ended)


def active(user: User) -> list[LoginSession]:
    return list(
        db.session.scalars(
            sa.select(LoginSession)
            .where(LoginSession.user_id == user.id, LoginSession.ended_at.is_(None))
            .order_by(LoginSession.created_at.desc())
        )
    )
