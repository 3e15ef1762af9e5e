"""GET /stream: the signed-in user's events, as text/event-stream; POST /stream/visibility:
whether the tab holding a stream is visible."""

import json
import queue
import threading
import time
import uuid

from flask import Response, current_app, request
from flask_login import current_user

from chipper.extensions import db
from chipper.realtime import bp, events
from chipper.realtime.hub import RESYNC
from chipper.services import Invalid
from chipper.web import form_value, json_error


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
    # Read fresh for this request: the number of the user's latest stored event.
    latest = current_user.event_seq
    fmt = "json" if request.args.get("format") == "json" else "html"
    resume = _resume_from()
    app = current_app._get_current_object()
    realtime = app.extensions["chipper.realtime"]
    realtime.broker.start()
    heartbeat = app.config["STREAM_HEARTBEAT"]
    replay_limit = app.config["STREAM_REPLAY_LIMIT"]
    # The stream keeps nothing of the request (no request context, session or User object
    # for hours): that is several KB per open stream. Database work below takes a short
    # app context of its own.
    db.session.remove()

    def catch_up(order: InOrder) -> tuple[str, bool]:
        """Stored events the stream has not sent yet, as text, and whether the stream can go
        on: when some are gone (pruned) or too many, the text tells the page to reload."""
        with app.app_context():
            rows = events.missed(user_id, order.last, replay_limit + 1)
            db.session.remove()
        if len(rows) > replay_limit or not order.replay_is_whole(rows):
            return events.frame("reload", "too much was missed", None), False
        ready = order.replayed(rows)
        return "".join(events.frames(e, user_id, fmt, seq) for seq, e in ready), True

    def generate():
        client = realtime.hub.register(user_id)
        stream_id = uuid.uuid4().hex
        present = False
        try:
            # Bytes at once, so proxies and EventSource see an open stream straight away.
            yield b": connected\nretry: 2000\n\n"
            if resume is not None and resume > latest:
                # A position this user never reached: the page comes from another database
                # (restored or reset). Replaying from it would skip everything up to it.
                yield events.frame("reload", "the server's history changed", None).encode()
                return
            # A stream without a resume point starts from now, never from the whole history.
            order = InOrder(resume if resume is not None else latest, latest)
            # Catch up only once the subscription is up, so nothing committed between the
            # catch-up and the first live event slips through. If Redis is away the stream
            # stays open and catches up when pub/sub is back (the hub resyncs every stream).
            realtime.broker.wait_ready(5.0)
            with app.app_context():
                present = True
                if realtime.presence.connect(user_id, stream_id):
                    _announce_presence(user_id, True)
            # The stream's name, once it is known to presence: the page reports whether its
            # tab is visible under it (POST /stream/visibility).
            yield events.frame("hello", json.dumps({"stream": stream_id})).encode()
            text, going_on = catch_up(order)
            if text:
                yield text.encode()
            if not going_on:
                return
            marked = time.monotonic()
            while True:
                if time.monotonic() - marked >= heartbeat:
                    # A busy stream never idles long enough for the heartbeat below.
                    realtime.presence.refresh(user_id, stream_id)
                    marked = time.monotonic()
                gap = order.gap_age()
                try:
                    if gap is not None and gap >= GAP_WAIT:
                        # An earlier event never came live (its publish failed, or another
                        # process is slow to send it): take it from the database.
                        raise queue.Empty
                    seq, envelope = client.get(timeout=heartbeat if gap is None else GAP_WAIT - gap)
                except queue.Empty:
                    if gap is None:
                        yield b": heartbeat\n\n"
                        continue
                    seq, envelope = None, RESYNC
                if client.dropped:
                    return
                if envelope is RESYNC:
                    text, going_on = catch_up(order)
                    if text:
                        yield text.encode()
                    if not going_on:
                        return
                    continue
                if seq is None:  # live only: typing, presence
                    yield events.frames(envelope, user_id, fmt, None).encode()
                    continue
                ready = order.live(seq, envelope)
                if ready:
                    yield ("".join(events.frames(e, user_id, fmt, n) for n, e in ready)).encode()
        finally:
            realtime.hub.unregister(client)
            if present:
                realtime.presence.disconnect(user_id, stream_id)
                _schedule_offline_check(app, user_id)

    # Bytes handed straight to the server (direct_passthrough): no encoding and closing
    # wrappers, whose generator frames each idle stream would keep suspended.
    response = Response(generate(), mimetype="text/event-stream", direct_passthrough=True)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


VISIBILITY = {"true": True, "on": True, "1": True, "false": False, "off": False, "0": False}


@bp.post("/stream/visibility")
def visibility():
    """A page says whether its tab is visible. Someone watching a visible tab sees new
    messages there; the others get a push notification. Only the signed-in user's own
    streams can be named: the user comes from the session, and other ids are ignored."""
    if not current_user.is_authenticated:
        return json_error("Log in first.", 401)
    stream_id = form_value("stream").strip()
    if not stream_id or len(stream_id) > 64:
        raise Invalid("Name the stream (from its hello event).", field="stream")
    visible = VISIBILITY.get(form_value("visible").strip().lower())
    if visible is None:
        raise Invalid("Say whether the tab is visible: true or false.", field="visible")
    current_app.extensions["chipper.realtime"].presence.set_visible(
        current_user.id, stream_id, visible
    )
    return "", 204


# How long a stream holds an event that arrived ahead of an earlier one before it fetches
# the earlier one from the database. Two processes publishing to one user a moment apart
# reorder within milliseconds; a failed publish is retried or read back after this.
GAP_WAIT = 1.0


class InOrder:
    """Puts one user's numbered events back in order and says what is missing.

    The numbers come from the user's gap-free sequence (EventRecipient.seq), so event N+1 is
    written only after N, and never twice, whichever process publishes first.
    """

    __slots__ = ("last", "known", "early", "gap_since")

    def __init__(self, last: int, known: int):
        self.last = last  # the highest number sent, everything below it sent too
        self.known = known  # the highest number known to be stored
        self.early: dict[int, dict] = {}
        self.gap_since: float | None = None

    def live(self, seq: int, envelope: dict) -> list[tuple[int, dict]]:
        """What can be sent now that `seq` arrived live."""
        self.known = max(self.known, seq)
        if seq <= self.last:
            return []  # already sent by a catch-up
        if seq > self.last + 1:
            self.early[seq] = envelope
            if self.gap_since is None:
                self.gap_since = time.monotonic()
            return []
        ready = [(seq, envelope)]
        self.last = seq
        while self.last + 1 in self.early:
            self.last += 1
            ready.append((self.last, self.early.pop(self.last)))
        if not self.early:
            self.gap_since = None
        return ready

    def replay_is_whole(self, rows: list[tuple[int, dict]]) -> bool:
        """Whether stored rows continue right after `last`: old events are pruned, and a
        stream asking for them must reload instead of skipping them."""
        if rows:
            return rows[0][0] <= self.last + 1
        return self.known <= self.last

    def replayed(self, rows: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
        """Stored rows (oldest first) not sent yet; they fill every gap up to their end."""
        ready = [(seq, e) for seq, e in rows if seq > self.last]
        if ready:
            self.last = ready[-1][0]
            self.known = max(self.known, self.last)
        self.early = {seq: e for seq, e in self.early.items() if seq > self.last}
        if self.early:
            # The rows end before what arrived early: send it in order too.
            while self.last + 1 in self.early:
                self.last += 1
                ready.append((self.last, self.early.pop(self.last)))
        self.gap_since = time.monotonic() if self.early else None
        return ready

    def gap_age(self) -> float | None:
        """Seconds since an event arrived ahead of a missing one, or None."""
        return None if self.gap_since is None else time.monotonic() - self.gap_since


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
