"""Live updates: one server-sent-events stream per tab, fed by pub/sub.

This package is the only code that touches pub/sub. Services record events with their change
(`events.record`), then publish them after the commit (`events.publish`).
"""

from dataclasses import dataclass, field

from flask import Blueprint, Flask, g, request
from flask_login import current_user

from chipper.realtime.hub import Hub, LocalBroker, RedisBroker
from chipper.realtime.presence import LocalPresence, RedisPresence

bp = Blueprint("realtime", __name__)


@dataclass
class Realtime:
    hub: Hub
    broker: LocalBroker | RedisBroker
    presence: LocalPresence | RedisPresence
    # Pending "went offline?" checks and missed-call timeouts, so shutting down can cancel them.
    timers: set = field(default_factory=set)
    closed: bool = False

    def close(self) -> None:
        """Cancels pending timers (they would open database connections later)."""
        self.closed = True
        for timer in list(self.timers):
            timer.cancel()
        self.timers.clear()


def init_app(app: Flask) -> None:
    hub = Hub(app.config["STREAM_QUEUE_SIZE"])
    if url := app.config["REDIS_URL"]:
        prefix = app.config["REDIS_PREFIX"]
        broker = RedisBroker(hub, url, f"{prefix}:events", app.config["REDIS_POOL_SIZE"])
        presence = RedisPresence(broker.redis, prefix)
    else:
        broker = LocalBroker(hub)
        presence = LocalPresence()
    app.extensions["chipper.realtime"] = Realtime(hub, broker, presence)
    app.register_blueprint(bp)

    @app.before_request
    def note_stream_position():
        # Taken before the page reads its data, so the page's stream resumes from a point
        # no later than what the page shows: nothing committed in between is missed.
        if (
            request.method == "GET"
            and request.endpoint not in ("static", "realtime.stream")
            and current_user.is_authenticated
        ):
            g.stream_resume = current_user.event_seq  # read by this request's user lookup

    @app.context_processor
    def realtime_helpers():
        def stream_resume() -> int:
            if "stream_resume" not in g:
                g.stream_resume = events.latest_seq(current_user.id)
            return g.stream_resume

        return {"stream_resume": stream_resume, "online_ids": presence.online}


from chipper.realtime import events, routes  # noqa: E402,F401  (routes registers itself on bp)
