"""GET /stream: the signed-in user's events, as text/event-stream."""

import queue
import threading
import time
import uuid

from flask import Response, current_app, request, stream_with_context
from flask_login import current_user

from chipper.extensions import db
from chipper.realtime import bp, events
from chipper.realtime.hub import RESYNC
from chipper.web import json_error


def _resume_from() -> int | None:
    """Last-Event-ID (a browser reconnecting by itself) or ?last_event_id= (a page that opened
    a fresh EventSource, which htmx's SSE extension does after a hard failure)."""
    for value in (request.headers.get("Last-Event-ID"), request.args.get("last_event_id")):
        if value and value.strip().isdigit():
            return int(value)
    return None


@bp.get("/stream")
def stream():
    if not current_user.is_authenticated:
        return json_error("Log in first.", 401)
    # The channel comes from the session, never from the request.
    user_id = current_user.id
    fmt = "json" if request.args.get("format") == "json" else "html"
    resume = _resume_from()
    app = current_app._get_current_object()
    realtime = app.extensions["chipper.realtime"]
    realtime.broker.start()
    # A stream without a resume point starts from now, never from the user's whole history.
    start_from = resume if resume is not None else events.latest_id(user_id)
    heartbeat = app.config["STREAM_HEARTBEAT"]
    replay_limit = app.config["STREAM_REPLAY_LIMIT"]

    def generate():
        client = realtime.hub.register(user_id)
        stream_id = uuid.uuid4().hex
        replayed_up_to = start_from
        delivered = start_from
        try:
            # Bytes at once, so proxies and EventSource see an open stream straight away.
            yield ": connected\nretry: 2000\n\n"
            db.session.remove()
            # Replay only once the subscription is up, so nothing committed between the replay
            # and the first live event slips through. If Redis is away the stream stays open
            # and catches up when pub/sub is back (the hub resyncs every stream then).
            realtime.broker.wait_ready(5.0)
            if realtime.presence.connect(user_id, stream_id):
                _announce_presence(user_id, True)
            if resume is not None:
                chunk, complete = _catch_up(user_id, resume, replay_limit, fmt)
                if not complete:
                    yield events.frame("reload", "too much was missed", None)
                    return
                for envelope_id, text in chunk:
                    yield text
                    replayed_up_to = delivered = envelope_id
            # Release the database connection before blocking for minutes.
            db.session.remove()
            marked = time.monotonic()
            while True:
                if time.monotonic() - marked >= heartbeat:
                    # A busy stream never idles long enough for the heartbeat below.
                    realtime.presence.refresh(user_id, stream_id)
                    marked = time.monotonic()
                try:
                    envelope = client.queue.get(timeout=heartbeat)
                except queue.Empty:
                    yield ": heartbeat\n\n"
                    continue
                if client.dropped:
                    return
                if envelope is RESYNC:
                    chunk, complete = _catch_up(user_id, delivered, replay_limit, fmt)
                    db.session.remove()
                    if not complete:
                        yield events.frame("reload", "too much was missed", None)
                        return
                    for envelope_id, text in chunk:
                        yield text
                        delivered = max(delivered, envelope_id)
                    replayed_up_to = max(replayed_up_to, delivered)
                    continue
                eid = envelope["id"]
                if eid is not None and eid <= replayed_up_to:
                    continue  # already sent by the replay
                yield events.frames(envelope, user_id, fmt)
                if eid is not None:
                    delivered = max(delivered, eid)
        finally:
            realtime.hub.unregister(client)
            realtime.presence.disconnect(user_id, stream_id)
            _schedule_offline_check(app, user_id)

    response = Response(stream_with_context(generate()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _catch_up(user_id: int, after: int, limit: int, fmt: str):
    """Missed events as (id, text) and whether that is all of them."""
    missed = events.missed(user_id, after, limit + 1)
    complete = len(missed) <= limit
    return [(e["id"], events.frames(e, user_id, fmt)) for e in missed[:limit]], complete


def _announce_presence(user_id: int, online: bool) -> None:
    from chipper.services.conversations import contact_ids  # services import this package

    recipients = contact_ids(user_id)
    db.session.remove()
    if recipients:
        envelope = events.ephemeral(
            "presence", None, recipients, data={"user_id": user_id, "online": online}
        )
        events.publish(envelope)


# Moving between pages closes one stream and opens another a moment later: wait before
# saying someone went offline, so presence does not flicker.
OFFLINE_GRACE = 4.0


def _schedule_offline_check(app, user_id: int) -> None:
    realtime = app.extensions["chipper.realtime"]
    if realtime.closed:
        return

    def check():
        realtime.timers.discard(timer)
        with app.app_context():
            if user_id not in realtime.presence.online([user_id]):
                _announce_presence(user_id, False)

    timer = threading.Timer(OFFLINE_GRACE, check)
    timer.daemon = True
    realtime.timers.add(timer)
    timer.start()
