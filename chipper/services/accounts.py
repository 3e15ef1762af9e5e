"""Accounts: who may register, registration and sign-in checks."""

from datetime import datetime

import email_validator
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from chipper import passwords
from chipper.extensions import db
from chipper.models import LoginSession, Message, User
from chipper.services import Forbidden, Invalid, invites, sessions, settings, text

EMAIL_TAKEN = "An account with this email already exists."
FIRST_ACCOUNT = (
    "This server has no accounts yet. Its first account, the admin, is made from the server "
    "itself: open this page on that machine, open the setup link the server has written to its "
    "log, or run `flask --app chipper create-admin` there."
)
CLOSED = "This server is not taking new accounts. Ask its admin if you should be on it."
INVITE_ONLY = (
    "This server takes new accounts by invitation. Ask someone who is on it for an invite link."
)

# Self-hosted servers often live on private names (ada@home.local, bob@nas.lan, a@b.test) and
# never send mail, so only "invalid" and "onion" stay refused. email_validator documents this
# list as the one to change for that.
for _name in ("local", "localhost", "test", "arpa"):
    if _name in email_validator.SPECIAL_USE_DOMAIN_NAMES:
        email_validator.SPECIAL_USE_DOMAIN_NAMES.remove(_name)
NAME_MAX = 80
PASSWORD_MIN = 8
PASSWORD_MAX = 1024


def clean_name(name: str) -> str:
    """One line, its runs of spaces made one ("Ada   Lovelace" is "Ada Lovelace")."""
    return " ".join(text.one_line(name).split())


def validate_registration(name: str, email: str, password: str) -> None:
    validate_name(name)
    validate_email(email)
    validate_password(password)


def validate_name(name: str) -> None:
    name = clean_name(name)
    if not name.strip():
        raise Invalid("Tell us your name.", field="name")
    if len(name.strip()) > NAME_MAX:
        raise Invalid(f"Names are at most {NAME_MAX} characters.", field="name")


def validate_email(email: str) -> None:
    try:
        email_validator.validate_email(
            email.strip(), check_deliverability=False, globally_deliverable=False
        )
    except email_validator.EmailNotValidError:
        raise Invalid("Enter an email address like name@example.com.", field="email") from None
    domains = current_app.config.get("EMAIL_DOMAINS") or []
    if domains and User.normalize_email(email).rpartition("@")[2] not in domains:
        raise Invalid(
            "This server takes addresses at " + ", ".join(domains) + " only.", field="email"
        )


def validate_password(password: str, field: str = "password") -> None:
    if len(password) < PASSWORD_MIN:
        raise Invalid(f"Passwords need at least {PASSWORD_MIN} characters.", field=field)
    if len(password) > PASSWORD_MAX:
        raise Invalid(f"Passwords are at most {PASSWORD_MAX} characters.", field=field)
    if passwords.is_common(password):
        raise Invalid(
            "That password is one of the most common ones, the first that attackers try. "
            "Choose another.",
            field=field,
        )


def has_accounts() -> bool:
    return db.session.scalar(sa.select(sa.exists().where(User.id.is_not(None)))) or False


def registration_mode() -> str:
    """open, invite or closed: an admin's choice on the admin page, else the configuration."""
    return settings.value("registration")


def refusal(invite_token: str = "", *, trusted: bool = False) -> str | None:
    """Why this visitor may not register now, or None when they may. `trusted`: the request
    comes from the server's own machine or carries the setup link. A read: nothing is used."""
    if not has_accounts():
        return None if trusted else FIRST_ACCOUNT
    mode = registration_mode()
    if mode == "open":
        return None
    if mode == "closed":
        return CLOSED
    if not invite_token:
        return INVITE_ONLY
    return invites.problem(invite_token)


def join(name: str, email: str, password: str, *, invite_token: str = "", trusted=False) -> User:
    """Registration from the web: the server's rule for who may join comes first, then the
    form; an invite's use is taken in the same transaction as the new account."""
    if reason := refusal(invite_token, trusted=trusted):
        raise Forbidden(reason)
    needs_invite = has_accounts() and registration_mode() == "invite"
    validate_registration(name, email, password)
    if needs_invite:
        invites.use(invite_token)
    return register_user(name, email, password)


def register_user(name: str, email: str, password: str, *, admin: bool = False) -> User:
    """Makes the account, with no check of who may join (the command line and `join` call it).
    The first account on a server is its admin."""
    validate_registration(name, email, password)
    email = User.normalize_email(email)
    if db.session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        db.session.rollback()
        raise Invalid(EMAIL_TAKEN, field="email")
    user = User(name=clean_name(name), email=email, is_admin=admin or not has_accounts())
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        # Two registrations with the same address raced; the unique constraint decided.
        db.session.rollback()
        raise Invalid(EMAIL_TAKEN, field="email") from None
    return user


def authenticate(email: str, password: str) -> User | None:
    """The account these match, or None; as slow for an unknown email as for a wrong password,
    so the answer's time does not tell who has an account."""
    user = db.session.scalar(sa.select(User).where(User.email == User.normalize_email(email)))
    if user is None:
        passwords.waste_time(password)
        return None
    matches, weak = user.check_password(password)
    if not matches or not user.is_active:
        return None
    if weak:
        user.set_password(password)
        db.session.commit()
    return user


WRONG_PASSWORD = "That is not your current password."


def change_password(user: User, current: str, new: str) -> int:
    """A new password, the current one first; every other sign-in of the account ends (a
    stolen cookie with it). Returns how many ended."""
    matches, _ = user.check_password(current)
    if not matches:
        raise Invalid(WRONG_PASSWORD, field="current_password")
    validate_password(new, field="new_password")
    user.set_password(new)
    ended = sessions.mark_ended(user.id, LoginSession.id != (user.session_id or 0))
    return sessions.finish(user.id, ended)


def search_users(query: str, *, exclude_ids: set[int] = frozenset(), limit: int = 50) -> list[User]:
    """Users whose name or email contains the query, by name."""
    stmt = sa.select(User).order_by(sa.func.lower(User.name), User.id).limit(limit)
    if query := query.strip():
        like = (
            "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        stmt = stmt.where(
            sa.or_(
                sa.func.lower(User.name).like(like, escape="\\"), User.email.like(like, escape="\\")
            )
        )
    if exclude_ids:
        stmt = stmt.where(User.id.not_in(exclude_ids))
    return list(db.session.scalars(stmt))


def directory() -> list[tuple[User, int, datetime | None]]:
    """Every account, by name, for the admin page: with the number of messages it has sent
    and when it was last active (its newest message or sign-in; whether it is online now is
    the stream's to say)."""
    sent = (
        sa.select(
            Message.user_id,
            sa.func.count(Message.id).label("sent"),
            sa.func.max(Message.created_at).label("last"),
        )
        .group_by(Message.user_id)
        .subquery()
    )
    signed_in = (
        sa.select(LoginSession.user_id, sa.func.max(LoginSession.created_at).label("last"))
        .group_by(LoginSession.user_id)
        .subquery()
    )
    stmt = (
        sa.select(User, sa.func.coalesce(sent.c.sent, 0), sent.c.last, signed_in.c.last)
        .outerjoin(sent, sent.c.user_id == User.id)
        .outerjoin(signed_in, signed_in.c.user_id == User.id)
        .order_by(sa.func.lower(User.name), User.id)
    )
    return [
        (user, count, max((t for t in (wrote, came) if t is not None), default=None))
        for user, count, wrote, came in db.session.execute(stmt)
    ]


def users_by_ids(ids: list[int]) -> list[User]:
    if not ids:
        return []
    return list(db.session.scalars(sa.select(User).where(User.id.in_(ids)).order_by(User.name)))


def set_read_receipts(user: User, on: bool) -> None:
    """Whether the others see when this user has read a conversation (and this user sees
    when they have). Their pages show it at their next read or refresh."""
    user.read_receipts = bool(on)
    db.session.commit()
