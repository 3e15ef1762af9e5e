"""What services use: record an event with the change it describes, publish it after the
commit. Typing and presence are `ephemeral()`: live only, never stored nor replayed.

A new kind of event is declared in chipper.realtime.kinds; nothing here changes.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import current_app, has_request_context, render_template

from chipper.realtime.kinds import Envelope, kind_of
from chipper.realtime.store import Spec, record_many, restate

__all__ = [
    "Envelope",
    "Spec",
    "ephemeral",
    "publish",
    "record",
    "record_many",
    "render",
    "restate",
]


def record(
    kind: str,
    conversation_id: int | None,
    recipients: Iterable[int],
    *,
    html: str = "",
    data: dict | None = None,
    message_id: int | None = None,
) -> Envelope:
    """Adds the event to the current transaction and returns its envelope for publish().
    `message_id`: the message it shows, so later changes of it can restate it (store)."""
    (envelope,) = record_many(Spec(kind, conversation_id, recipients, html, data, message_id))
    return envelope


def ephemeral(
    kind: str, conversation_id: int | None, recipients: Iterable[int], *, html="", data=None
) -> Envelope:
    name = kind_of(kind, stored=False).name
    return Envelope(name, conversation_id, sorted(set(recipients)), html, data or {})


def render(template: str, **context) -> str:
    """A viewer-neutral partial for an event. Works outside requests too (CLI, jobs), where
    url_for needs a request context to build paths."""
    if has_request_context():
        return render_template(template, **context)
    with current_app.test_request_context("/"):
        return render_template(template, **context)


def publish(*envelopes: Envelope) -> None:
    """Hands committed events to pub/sub. Call only after the commit."""
    broker = current_app.extensions["chipper.realtime"].broker
    for envelope in envelopes:
        broker.publish(envelope)
