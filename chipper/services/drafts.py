"""The text of a send refused without JavaScript. The browser is redirected back to the
conversation (so a reload cannot post it again), and that page puts the text and the reason
back in the composer. The row belongs to the sign-in that typed it; it is replaced by the next
refusal there, dropped by a send from it, by the scheduler after DRAFT_KEEP_SECONDS, and with
its sign-in (the foreign key cascades; `drop_for_sessions` when sign-ins end)."""

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from chipper.extensions import db
from chipper.models import RefusedDraft, User, utcnow
from chipper.services import text

ERROR_MAX = 300


def keep(user: User, conversation_id: int, body: str, error: str) -> bool:
    """Keeps the refused text for this sign-in; False when there is no sign-in row to tie it
    to (the caller then answers in place)."""
    if getattr(user, "session_id", None) is None:
        return False
    _delete(user.session_id, conversation_id)
    db.session.add(
        RefusedDraft(
            session_id=user.session_id,
            conversation_id=conversation_id,
            # Without the controls a send drops too (PostgreSQL refuses NUL in text).
            body=text.message_text(body),
            error=error[:ERROR_MAX],
        )
    )
    db.session.commit()
    return True


def kept(user: User, conversation_id: int) -> RefusedDraft | None:
    """The refused text this sign-in left for the conversation, while it is fresh."""
    if getattr(user, "session_id", None) is None:
        return None
    return db.session.scalar(
        sa.select(RefusedDraft).where(
            RefusedDraft.session_id == user.session_id,
            RefusedDraft.conversation_id == conversation_id,
            RefusedDraft.created_at >= _cutoff(),
        )
    )


def discard(user: User, conversation_id: int) -> None:
    """A send from the refilled composer went through: the kept text is done with."""
    if getattr(user, "session_id", None) is not None:
        _delete(user.session_id, conversation_id)
        db.session.commit()


def drop_for_sessions(session_ids: list[int]) -> None:
    """In the caller's transaction: ended sign-ins take their kept text with them."""
    if session_ids:
        db.session.execute(sa.delete(RefusedDraft).where(RefusedDraft.session_id.in_(session_ids)))


def prune() -> int:
    """The scheduler's sweep of kept text older than DRAFT_KEEP_SECONDS."""
    result = db.session.execute(sa.delete(RefusedDraft).where(RefusedDraft.created_at < _cutoff()))
    db.session.commit()
    return result.rowcount


def _cutoff():
    return utcnow() - timedelta(seconds=current_app.config["DRAFT_KEEP_SECONDS"])


def _delete(session_id: int, conversation_id: int) -> None:
    db.session.execute(
        sa.delete(RefusedDraft).where(
            RefusedDraft.session_id == session_id,
            RefusedDraft.conversation_id == conversation_id,
        )
    )
