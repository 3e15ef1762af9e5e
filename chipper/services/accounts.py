"""Accounts: registration and sign-in checks."""

import email_validator
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chipper.extensions import db
from chipper.models import User
from chipper.services import Invalid, text

EMAIL_TAKEN = "An account with this email already exists."
NAME_MAX = 80
PASSWORD_MIN = 8
PASSWORD_MAX = 1024


def clean_name(name: str) -> str:
    return text.one_line(name).strip()


def validate_registration(name: str, email: str, password: str) -> None:
    name = clean_name(name)
    if not name.strip():
        raise Invalid("Tell us your name.", field="name")
    if len(name.strip()) > NAME_MAX:
        raise Invalid(f"Names are at most {NAME_MAX} characters.", field="name")
    try:
        email_validator.validate_email(email.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError:
        raise Invalid("Enter an email address like name@example.com.", field="email") from None
    if len(password) < PASSWORD_MIN:
        raise Invalid(f"Passwords need at least {PASSWORD_MIN} characters.", field="password")
    if len(password) > PASSWORD_MAX:
        raise Invalid(f"Passwords are at most {PASSWORD_MAX} characters.", field="password")


def register_user(name: str, email: str, password: str) -> User:
    validate_registration(name, email, password)
    email = User.normalize_email(email)
    if db.session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise Invalid(EMAIL_TAKEN, field="email")
    user = User(name=clean_name(name), email=email)
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
    user = db.session.scalar(sa.select(User).where(User.email == User.normalize_email(email)))
    if user is None or not user.check_password(password):
        return None
    return user


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


def users_by_ids(ids: list[int]) -> list[User]:
    if not ids:
        return []
    return list(db.session.scalars(sa.select(User).where(User.id.in_(ids)).order_by(User.name)))
