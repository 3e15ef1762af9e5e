"""The per-process hub: one pub/sub subscription shared by every stream of this process.

Envelopes travel as JSON: {"id", "kind", "conversation_id", "recipients", "html", "data"}.
The hub hands each envelope to the local streams of its recipients, through bounded queues
so a slow client never holds up the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import threading
import time

log = logging.getLogger(__name__)

# Tells a stream to catch up from the database: the hub may have missed envelopes.
RESYNC = {"kind": "resync"}


class Client:
    """One open stream."""

    def __init__(self, user_id: int, size: int):
        self.user_id = user_id
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.dropped = False

    def offer(self, envelope: dict) -> None:
        try:
            self.queue.put_nowait(envelope)
        except queue.Full:
            # Too slow: it will be closed and reconnect, replaying what it missed.
            self.dropped = True


class Hub:
    def __init__(self, queue_size: int = 256):
        self.queue_size = queue_size
        self._clients: dict[int, set[Client]] = {}
        self._lock = threading.Lock()

    def register(self, user_id: int) -> Client:
        client = Client(user_id, self.queue_size)
        with self._lock:
            self._clients.setdefault(user_id, set()).add(client)
        return client

    def unregister(self, client: Client) -> None:
        with self._lock:
            clients = self._clients.get(client.user_id)
            if clients is not None:
                clients.discard(client)
                if not clients:
                    del self._clients[client.user_id]

    def dispatch(self, envelope: dict) -> None:
        with self._lock:
            targets = [c for uid in envelope["recipients"] for c in self._clients.get(uid, ())]
        for client in targets:
            client.offer(envelope)

    def resync(self) -> None:
        with self._lock:
            targets = [c for clients in self._clients.values() for c in clients]
        for client in targets:
            client.offer(RESYNC)

    def stream_count(self) -> int:
        with self._lock:
            return sum(len(c) for c in self._clients.values())


class LocalBroker:
    """The embedded default: no Redis, so events reach the streams of this process only."""

    def __init__(self, hub: Hub):
        self.hub = hub

    def start(self) -> None:
        pass

    def wait_ready(self, timeout: float) -> bool:
        return True

    def publish(self, envelope: dict) -> None:
        self.hub.dispatch(envelope)


class RedisBroker:
    """Publishes to one Redis channel; one subscriber thread per process feeds the hub.

    The subscriber survives Redis restarts: it reconnects with backoff and then tells every
    stream to catch up from the database.
    """

    def __init__(self, hub: Hub, url: str, channel: str):
        import redis

        self.hub = hub
        self.channel = channel
        self.redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._started = False
        self._start_lock = threading.Lock()
        self.subscribed = threading.Event()

    def start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self._started = True
        thread = threading.Thread(target=self._listen_forever, name="chipper-pubsub", daemon=True)
        thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """Whether the subscription is up; a stream waits for it before replaying, so nothing
        committed between its replay and the first live event can slip through."""
        return self.subscribed.wait(timeout)

    def publish(self, envelope: dict) -> None:
        import redis

        try:
            self.redis.publish(self.channel, json.dumps(envelope))
        except redis.RedisError:
            # The change is committed and its event stored: streams catch up from the
            # database once the subscriber is back. Never fail the request for this.
            log.warning("could not publish %s: Redis is unreachable", envelope.get("kind"))
            self.hub.resync()

    def _listen_forever(self) -> None:
        import redis

        delay = 0.1
        first = True
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self.subscribed.set()
                # Also after the first subscribe: streams may have opened while Redis was away.
                if not first:
                    log.info("pub/sub is back; streams catch up from the database")
                first = False
                self.hub.resync()
                delay = 0.1
                while True:
                    # A timeout lets the loop notice a dead connection instead of hanging.
                    message = pubsub.get_message(timeout=30)
                    if message is None:
                        pubsub.ping()
                        continue
                    if message.get("type") != "message":
                        continue
                    try:
                        envelope = json.loads(message["data"])
                    except (TypeError, ValueError):
                        log.warning("ignored a malformed envelope on %s", self.channel)
                        continue
                    self.hub.dispatch(envelope)
            except (redis.RedisError, OSError):
                self.subscribed.clear()
                log.warning("pub/sub connection lost; retrying in %.1f s", delay)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()
            time.sleep(delay + random.uniform(0, delay / 2))
            delay = min(delay * 2, 5.0)
