"""The live stream's web side: GET /stream opens a user's stream, POST /stream/visibility says
whether its tab is visible; presence is announced to the people someone shares a
conversation with; every page learns where its stream resumes."""

from flask import Blueprint, Flask, g, request
from flask_login import current_user

from chipper.realtime import store

bp = Blueprint("streams", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    presence = app.extensions["chipper.realtime"].presence

    @app.before_request
    def note_stream_position():
        # Taken before the page reads its data, so the page's stream resumes from a point
        # no later than what the page shows: nothing committed in between is missed.
        if (
            request.method == "GET"
            and request.endpoint not in ("static", "streams.show")
            and current_user.is_authenticated
        ):
            g.stream_resume = current_user.event_seq  # read by this request's user lookup

    @app.context_processor
    def stream_helpers():
        def stream_resume() -> int:
            if "stream_resume" not in g:
                g.stream_resume = store.latest_seq(current_user.id)
            return g.stream_resume

        return {"stream_resume": stream_resume, "online_ids": presence.online}


from chipper.streams import routes  # noqa: E402,F401  (registers the routes on bp)
