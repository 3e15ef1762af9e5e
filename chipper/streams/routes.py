"""GET /stream: the signed-in user's events, as text/event-stream; POST /stream/visibility:
whether the tab holding a stream is visible."""

from flask import Response, current_app, request
from flask_login import current_user

from chipper.extensions import db
from chipper.realtime.stream import Stream
from chipper.services import Invalid
from chipper.streams import bp, presence
from chipper.web import form_value, json_error


def _resume_from() -> int | None:
    """Last-Event-ID (a browser reconnecting by itself) or ?last_event_id= (a page that opened
    a fresh EventSource, which htmx's SSE extension does after a hard failure)."""
    for value in (request.headers.get("Last-Event-ID"), request.args.get("last_event_id")):
        if value and value.strip().isdigit():
            return int(value)
    return None


@bp.get("/stream")
def show():
    if not current_user.is_authenticated:
        return json_error("Log in first.", 401)
    app = current_app._get_current_object()
    app.extensions["chipper.realtime"].broker.start()
    stream = Stream(
        app,
        current_user.id,  # the channel comes from the session, never from the request
        fmt="json" if request.args.get("format") == "json" else "html",
        resume=_resume_from(),
        latest=current_user.event_seq,  # read fresh for this request
        came=presence.came_online,
        left=presence.check_later,
        session=current_user.session_id,  # ending this sign-in ends the stream
    )
    # The stream keeps nothing of the request (no request context, session or User object
    # for hours): that is several KB per open stream.
    db.session.remove()
    # Bytes handed straight to the server (direct_passthrough): no encoding and closing
    # wrappers, whose generator frames each idle stream would keep suspended.
    response = Response(iter(stream), mimetype="text/event-stream", direct_passthrough=True)
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
