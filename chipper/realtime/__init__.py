"""Live updates: one server-sent-events stream per tab, fed by pub/sub.

Rooms, each importing only the ones before it:
- `kinds`: every kind of event, declared once, and the envelope that carries one;
- `store`: the events table (record with the change, number, replay, prune);
- `wire`: what an envelope becomes as SSE frames (pure functions);
- `hub`: fan-out to this process's streams, Redis between processes; `presence`: who watches;
- `stream`: one open stream (order, gap fill, heartbeats);
- `events`: what services call (record, publish after the commit, ephemeral, render).
This package is the only code that touches pub/sub. It knows nothing of conversations or of
the web layer: the `streams` blueprint opens streams and says who hears of someone's presence.
"""

from dataclasses import dataclass

from flask import Flask

from chipper.realtime.hub import Hub, LocalBroker, RedisBroker
from chipper.realtime.presence import LocalPresence, RedisPresence


@dataclass
class Realtime:
    hub: Hub
    broker: LocalBroker | RedisBroker
    presence: LocalPresence | RedisPresence


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
