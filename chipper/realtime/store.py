"""The events table: each event recorded in the transaction of the change it describes,
numbered in each recipient's gap-free sequence, replayed to a stream after a position, and
pruned when too old to be worth replaying.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from chipper.extensions import db
from chipper.models import Event, EventRecipient, User, utcnow
from chipper.realtime.kinds import Envelope, kind_of


@dataclass(slots=True)
class Spec:
    """One event to record: its kind, its conversation, who gets it and what it carries."""

    kind: str
    conversation_id: int | None
    recipients: Iterable[int]
    html: str = ""
    data: dict | None = None
    message_id: int | None = None  # the message it shows, if any


def record_many(*specs: Spec) -> list[Envelope]:
    """Several events in one transaction, numbered together; their envelopes, for publishing
    after the commit.

    Each recipient's `event_seq` is bumped in one statement, which locks their user rows until
    the commit: numbers are handed out and committed in the same order, with no gaps. Taking
    every row a transaction needs at once, in id order, keeps two transactions from deadlocking.
    Call it last before the commit, so the rows stay locked for as short a time as possible.
    """
    events = [
        Envelope(
            kind_of(s.kind, stored=True).name,
            s.conversation_id,
            sorted(set(s.recipients)),
            s.html or "",
            s.data or {},
        )
        for s in specs
    ]
    seqs = _take_seqs(Counter(uid for e in events for uid in e.recipients))
    created = utcnow()
    for e, spec in zip(events, specs, strict=True):
        # Core statements: the ORM unit of work costs more than these inserts themselves.
        e.id = db.session.scalar(
            _INSERT_EVENT,
            {
                "kind": e.kind,
                "conversation_id": e.conversation_id,
                "message_id": spec.message_id,
                "payload": _payload(e.html, e.data),
                "created_at": created,
            },
        )
        e.seqs = [seqs[uid].pop(0) for uid in e.recipients]
        if e.recipients:
            db.session.execute(
                _INSERT_RECIPIENTS,
                [
                    {"user_id": uid, "seq": seq, "event_id": e.id}
                    for uid, seq in zip(e.recipients, e.seqs, strict=True)
                ],
            )
    return events


def restate(message_id: int, html: str, data: dict) -> None:
    """Gives the events already recorded for a message its present form: after an edit or a
    deletion the table keeps no earlier text of it (nor of a quote of it) to replay. A replay
    then shows the message as it is at every step, which is where its last event leaves a
    page anyway. Call it in the transaction of the change, before recording the new event."""
    db.session.execute(
        sa.update(_events)
        .where(_events.c.message_id == message_id)
        .values(payload=_payload(html, data))
    )


def _payload(html: str, data: dict) -> str:
    return json.dumps({"html": html, "data": data})


_users = User.__table__
_events = Event.__table__
_recipients = EventRecipient.__table__

# Built once: building a statement costs more than running it from SQLAlchemy's compiled cache.
_INSERT_EVENT = sa.insert(_events).returning(_events.c.id)
_INSERT_RECIPIENTS = sa.insert(_recipients)
_LOCK_USERS = (
    sa.select(_users.c.id)
    .where(_users.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_users.c.id)
    # NO KEY UPDATE (what the UPDATE below takes anyway) lets inserts that reference these
    # users (their foreign keys take KEY SHARE locks) go on; FOR UPDATE would deadlock with them.
    .with_for_update(key_share=True)
)
# The same step for every recipient (one event, or several for the same people).
_TAKE_SEQS = (
    sa.update(_users)
    .where(_users.c.id.in_(sa.bindparam("ids", expanding=True)))
    # Naming updated_at keeps its onupdate default from firing: this is not a profile edit.
    .values(event_seq=_users.c.event_seq + sa.bindparam("step"), updated_at=_users.c.updated_at)
    .returning(_users.c.id, _users.c.event_seq)
)


def _take_seqs(counts: Counter) -> dict[int, list[int]]:
    """The next `counts[uid]` numbers of each user's sequence, oldest first."""
    if not counts:
        return {}
    ids = sorted(counts)
    if db.session.get_bind().dialect.name != "sqlite":
        # Row locks in id order; SQLite has a single writer and no row locks.
        db.session.execute(_LOCK_USERS, {"ids": ids})
    steps = set(counts.values())
    if len(steps) == 1:
        rows = db.session.execute(_TAKE_SEQS, {"ids": ids, "step": steps.pop()}).all()
    else:
        step = sa.case(counts, value=_users.c.id, else_=0)
        rows = db.session.execute(
            sa.update(_users)
            .where(_users.c.id.in_(ids))
            .values(event_seq=_users.c.event_seq + step, updated_at=_users.c.updated_at)
            .returning(_users.c.id, _users.c.event_seq)
        ).all()
    if len(rows) != len(ids):
        raise ValueError("an event names a recipient who does not exist")
    return {uid: list(range(top - counts[uid] + 1, top + 1)) for uid, top in rows}


def prune(days: float | None = None) -> int:
    """Drops events too old to be worth replaying (a scheduled job, every
    EVENT_PRUNE_INTERVAL, asked by services.settings with the admin's retention): a tab away
    longer than `days` (EVENT_RETENTION_DAYS by default) reloads instead. Their recipient
    rows go with them (ON DELETE CASCADE). Returns how many went."""
    if days is None:
        days = current_app.config["EVENT_RETENTION_DAYS"]
    cutoff = utcnow() - timedelta(days=days)
    result = db.session.execute(sa.delete(Event).where(Event.created_at < cutoff))
    db.session.commit()
    return result.rowcount


def missed(user_id: int, after: int, limit: int) -> list[tuple[int, Envelope]]:
    """The user's events numbered after `after`, oldest first, at most `limit`, as (seq,
    envelope)."""
    rows = db.session.execute(
        sa.select(_recipients.c.seq, _events)
        .join(_events, _events.c.id == _recipients.c.event_id)
        .where(_recipients.c.user_id == user_id, _recipients.c.seq > after)
        .order_by(_recipients.c.seq)
        .limit(limit)
    )
    out = []
    for row in rows:
        payload = json.loads(row.payload)
        envelope = Envelope(
            row.kind,
            row.conversation_id,
            [user_id],
            payload["html"],
            payload["data"],
            row.id,
            [row.seq],
        )
        out.append((row.seq, envelope))
    return out


def latest_seq(user_id: int) -> int:
    """Where a stream opened now starts: the number of the user's latest event."""
    return db.session.scalar(sa.select(_users.c.event_seq).where(_users.c.id == user_id)) or 0
