"""Events: recorded with the change they describe, published after its commit, written as SSE.

A service verb calls `record()` before its commit (the event row commits with the change) and
`publish()` after it. Typing and presence are `ephemeral()`: live only, never replayed.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, has_request_context, render_template

from chipper.extensions import db
from chipper.models import Event, EventRecipient, User, utcnow

# Frames a browser page gets for each kind, besides `<kind>-<conversation id>` itself:
# the conversation list refreshes on LIST kinds, the unread badge on UNREAD kinds.
LIST_KINDS = {
    "message-created",
    "message-deleted",
    "conversation-created",
    "conversation-updated",
    "conversation-removed",
    "read",
}
UNREAD_KINDS = {"message-created", "message-deleted", "conversation-removed", "read"}
# Kinds with no per-conversation frame of their own.
LIST_ONLY = {"conversation-created", "read"}
# A call's changes also go out as one `call` frame (JSON) that every page listens to: an
# incoming call rings whatever page is open, and the call page follows its call.
CALL_KINDS = {"call-ringing", "call-updated", "call-ended"}


def record(
    kind: str,
    conversation_id: int | None,
    recipients: Iterable[int],
    *,
    html: str = "",
    data: dict | None = None,
) -> dict:
    """Adds the event to the current transaction and returns its envelope for publish()."""
    (envelope,) = record_many(
        {
            "kind": kind,
            "conversation_id": conversation_id,
            "recipients": recipients,
            "html": html,
            "data": data,
        }
    )
    return envelope


def record_many(*specs: dict) -> list[dict]:
    """Several events in one transaction (keys as record()'s arguments), numbered together.

    Each recipient's `event_seq` is bumped in one statement, which locks their user rows until
    the commit: numbers are handed out and committed in the same order, with no gaps. Taking
    every row a transaction needs at once, in id order, keeps two transactions from deadlocking.
    Call it last before the commit, so the rows stay locked for as short a time as possible.
    """
    specs = [
        (
            s["kind"],
            s["conversation_id"],
            sorted(set(s["recipients"])),
            s.get("html") or "",
            s.get("data") or {},
        )
        for s in specs
    ]
    counts = Counter(uid for spec in specs for uid in spec[2])
    seqs = _take_seqs(counts)
    envelopes = []
    created = utcnow()
    for kind, conversation_id, recipients, html, data in specs:
        # Core statements: the ORM unit of work costs more than these inserts themselves.
        event_id = db.session.scalar(
            _INSERT_EVENT,
            {
                "kind": kind,
                "conversation_id": conversation_id,
                "payload": json.dumps({"html": html, "data": data}),
                "created_at": created,
            },
        )
        numbers = [seqs[uid].pop(0) for uid in recipients]
        if recipients:
            db.session.execute(
                _INSERT_RECIPIENTS,
                [
                    {"user_id": uid, "seq": seq, "event_id": event_id}
                    for uid, seq in zip(recipients, numbers, strict=True)
                ],
            )
        envelopes.append(
            _envelope(event_id, kind, conversation_id, recipients, numbers, html, data)
        )
    if random.random() < PRUNE_CHANCE:
        prune()
    return envelopes


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


# Now and then a write also drops events too old to be worth replaying: a tab away longer than
# EVENT_RETENTION_DAYS reloads instead (see STREAM_REPLAY_LIMIT).
PRUNE_CHANCE = 0.002


def prune() -> int:
    days = current_app.config["EVENT_RETENTION_DAYS"]
    cutoff = utcnow() - timedelta(days=days)
    result = db.session.execute(sa.delete(Event).where(Event.created_at < cutoff))
    return result.rowcount


def ephemeral(
    kind: str, conversation_id: int | None, recipients: Iterable[int], *, html="", data=None
) -> dict:
    return _envelope(None, kind, conversation_id, sorted(set(recipients)), None, html, data or {})


def _envelope(event_id, kind, conversation_id, recipients, seqs, html, data) -> dict:
    """What travels on pub/sub. `seqs[i]` is the event's number in `recipients[i]`'s sequence;
    live-only events have none."""
    return {
        "id": event_id,
        "kind": kind,
        "conversation_id": conversation_id,
        "recipients": recipients,
        "seqs": seqs,
        "html": html,
        "data": data,
    }


def render(template: str, **context) -> str:
    """A viewer-neutral partial for an event. Works outside requests too (CLI, jobs), where
    url_for needs a request context to build paths."""
    if has_request_context():
        return render_template(template, **context)
    with current_app.test_request_context("/"):
        return render_template(template, **context)


def publish(*envelopes: dict) -> None:
    """Hands committed events to pub/sub. Call only after the commit."""
    broker = current_app.extensions["chipper.realtime"].broker
    for envelope in envelopes:
        broker.publish(envelope)


def missed(user_id: int, after: int, limit: int) -> list[tuple[int, dict]]:
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
        envelope = _envelope(
            row.id,
            row.kind,
            row.conversation_id,
            [user_id],
            [row.seq],
            payload["html"],
            payload["data"],
        )
        out.append((row.seq, envelope))
    return out


def latest_seq(user_id: int) -> int:
    """Where a stream opened now starts: the number of the user's latest event."""
    return db.session.scalar(sa.select(_users.c.event_seq).where(_users.c.id == user_id)) or 0


# SSE wire format


def _field(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("SSE event names and ids cannot contain line breaks")
    return value


def frame(event: str, data: str, event_id: int | None = None) -> str:
    return _frame(event, _data_field(data), event_id)


def _frame(event: str, data_field: str, event_id: int | None) -> str:
    head = f"event: {_field(event)}\n"
    if event_id is not None:
        head += f"id: {_field(str(event_id))}\n"
    return head + data_field + "\n"


def _data_field(data: str) -> str:
    # Each line of the data gets its own "data:" field, so text cannot start a new field.
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(f"data: {line}\n" for line in text.split("\n"))


def frames(envelope: dict, user_id: int, fmt: str, eid: int | None) -> str:
    """What one envelope becomes on one user's stream; `eid` is its number in that user's
    sequence (None for live-only events)."""
    # The frames' names and data are the same on every stream of this process (only the id
    # differs): built for the first and kept on the envelope for the others.
    own = envelope["kind"].startswith("message-") and envelope["data"].get("user_id") == user_id
    wire = envelope.setdefault("_wire", {})
    key = f"{fmt}-own" if own else fmt
    parts = wire.get(key)
    if parts is None:
        parts = wire[key] = [(name, _data_field(data)) for name, data in _parts(envelope, fmt, own)]
    return "".join(_frame(name, data_field, eid) for name, data_field in parts)


def _parts(envelope: dict, fmt: str, own_message: bool) -> list[tuple[str, str]]:
    """The (event name, data) of each frame an envelope becomes."""
    kind, cid = envelope["kind"], envelope["conversation_id"]
    if fmt == "json":
        return [(kind, json.dumps({"conversation_id": cid, **envelope["data"]}))]
    if kind in ("presence", "call-signal"):
        return [(kind, json.dumps(envelope["data"]))]
    out = []
    if kind not in LIST_ONLY:
        out.append((f"{kind}-{cid}", envelope["html"]))
    if kind in CALL_KINDS:
        out.append(("call", json.dumps(envelope["data"])))
    if kind in LIST_KINDS:
        out.append(("conversations-changed", str(cid)))
    if kind in UNREAD_KINDS and not own_message:
        out.append(("unread-changed", ""))
    return out
