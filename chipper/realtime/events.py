"""Events: recorded with the change they describe, published after its commit, written as SSE.

A service verb calls `record()` before its commit (the event row commits with the change) and
`publish()` after it. Typing and presence are `ephemeral()`: live only, never replayed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, has_request_context, render_template

from chipper.extensions import db
from chipper.models import Event, EventRecipient, utcnow

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

_PG_EVENT_LOCK = 0x43484950  # any constant: serialises event ids with commit order


def record(
    kind: str,
    conversation_id: int | None,
    recipients: Iterable[int],
    *,
    html: str = "",
    data: dict | None = None,
) -> dict:
    """Adds the event to the current transaction and returns its envelope for publish()."""
    if db.session.get_bind().dialect.name == "postgresql":
        # Ids must become visible in the order they were handed out, or a stream resuming
        # after id N could skip an N-1 that committed later. SQLite has one writer anyway.
        db.session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_EVENT_LOCK})
    recipients = sorted(set(recipients))
    data = data or {}
    event = Event(
        kind=kind,
        conversation_id=conversation_id,
        payload=json.dumps({"html": html, "data": data}),
    )
    event.recipients = [EventRecipient(user_id=uid) for uid in recipients]
    db.session.add(event)
    db.session.flush()
    if random.random() < PRUNE_CHANCE:
        prune()
    return _envelope(event.id, kind, conversation_id, recipients, html, data)


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
    return _envelope(None, kind, conversation_id, sorted(set(recipients)), html, data or {})


def _envelope(event_id, kind, conversation_id, recipients, html, data) -> dict:
    return {
        "id": event_id,
        "kind": kind,
        "conversation_id": conversation_id,
        "recipients": recipients,
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


def from_row(event: Event, recipients: list[int]) -> dict:
    payload = json.loads(event.payload)
    return _envelope(
        event.id, event.kind, event.conversation_id, recipients, payload["html"], payload["data"]
    )


def missed(user_id: int, after: int, limit: int) -> list[dict]:
    """The user's events after id `after`, oldest first, at most `limit`."""
    rows = db.session.scalars(
        sa.select(Event)
        .join(EventRecipient, EventRecipient.event_id == Event.id)
        .where(EventRecipient.user_id == user_id, Event.id > after)
        .order_by(Event.id)
        .limit(limit)
    )
    return [from_row(event, [user_id]) for event in rows]


def latest_id(user_id: int) -> int:
    """Where a page rendered now should resume its stream from."""
    value = db.session.scalar(
        sa.select(sa.func.max(EventRecipient.event_id)).where(EventRecipient.user_id == user_id)
    )
    return value or 0


# SSE wire format


def _field(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("SSE event names and ids cannot contain line breaks")
    return value


def frame(event: str, data: str, event_id: int | None = None) -> str:
    lines = [f"event: {_field(event)}"]
    if event_id is not None:
        lines.append(f"id: {_field(str(event_id))}")
    # Each line of the data gets its own "data:" field, so text cannot start a new field.
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


def frames(envelope: dict, user_id: int, fmt: str) -> str:
    """What one envelope becomes on one user's stream."""
    kind, cid, eid = envelope["kind"], envelope["conversation_id"], envelope["id"]
    if fmt == "json":
        return frame(kind, json.dumps({"conversation_id": cid, **envelope["data"]}), eid)
    if kind == "presence":
        return frame(kind, json.dumps(envelope["data"]), eid)
    out = []
    if kind not in LIST_ONLY:
        out.append(frame(f"{kind}-{cid}", envelope["html"], eid))
    if kind in LIST_KINDS:
        out.append(frame("conversations-changed", str(cid), eid))
    own_message = kind.startswith("message-") and envelope["data"].get("user_id") == user_id
    if kind in UNREAD_KINDS and not own_message:
        out.append(frame("unread-changed", "", eid))
    return "".join(out)
