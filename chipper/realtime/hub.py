"""The per-process hub: one pub/sub subscription shared by every stream of this process.

Envelopes travel as JSON: {"id", "kind", "conversation_id", "recipients", "html", "data"}.
The hub hands each envelope to the local streams of its recipients, through bounded queues
so a slow client never holds up the others.
"""

from __future__ import annotations

import collections
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
    """One open stream: what the hub hands it, as (seq, envelope), waiting to be written.

    A deque and an Event rather than a queue.Queue (a deque, a mutex and three Conditions):
    thousands of these sit idle in one process.
    """

    __slots__ = ("user_id", "size", "items", "ready", "dropped")

    def __init__(self, user_id: int, size: int):
        self.user_id = user_id
        self.size = size
        self.items: collections.deque = collections.deque()
        self.ready = threading.Event()
        self.dropped = False

    def offer(self, seq: int | None, envelope: dict) -> None:
        if len(self.items) >= self.size:
            # Too slow: it will be closed and reconnect, replaying what it missed.
            self.dropped = True
        else:
            self.items.append((seq, envelope))
        self.ready.set()

    def get(self, timeout: float) -> tuple[int | None, dict]:
        """The next item, or queue.Empty after `timeout` seconds."""
        if not self.items:
            self.ready.clear()
            if not self.items:  # an offer() between the check and clear() set it again
                self.ready.wait(timeout)
        if not self.items:
            raise queue.Empty
        return self.items.popleft()


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
        seqs = envelope.get("seqs") or [None] * len(envelope["recipients"])
        with self._lock:
            targets = [
                (client, seq)
                for uid, seq in zip(envelope["recipients"], seqs, strict=True)
                for client in self._clients.get(uid, ())
            ]
        for client, seq in targets:
            client.offer(seq, envelope)

    def resync(self) -> None:
        with self._lock:
            targets = [c for clients in self._clients.values() for c in clients]
        for client in targets:
            client.offer(None, RESYNC)

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

    def __init__(self, hub: Hub, url: str, channel: str, pool_size: int = 20):
        import redis

        self.hub = hub
        self.channel = channel
        # A bounded pool, shared by every stream and request of this process: greenlets wait
        # their turn for a connection instead of opening one each (opening 100 streams at once
        # grew the default pool past 100 connections, each with its own buffers).
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size,
            timeout=5,
            socket_timeout=5,
            socket_connect_timeout=5,
        )
        self.redis = redis.Redis(connection_pool=pool)
        self._started = False
        self._start_lock = threading.Lock()
        self.subscribed = threading.Event()
        # Envelopes whose publish failed, oldest first, and whether a thread is retrying them.
        self._retry: collections.deque[str] = collections.deque()
        self._retry_lock = threading.Lock()
        self._retrying = False

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

        data = json.dumps(envelope)
        with self._retry_lock:
            if self._retry:
                # Earlier envelopes are still waiting: keep this process's order.
                self._hold(data)
                return
        try:
            self.redis.publish(self.channel, data)
        except redis.RedisError:
            # The change is committed and its event stored; never fail the request for this.
            # Publishing again later reaches every process, not only this one.
            log.warning("could not publish %s; will retry", envelope.get("kind"))
            with self._retry_lock:
                self._hold(data)

    def _hold(self, data: str) -> None:
        """Keeps an envelope to publish again (the caller holds _retry_lock)."""
        if len(self._retry) >= self.RETRY_LIMIT:
            # Streams still get it: the next event of each recipient reveals the gap, and
            # a reconnect replays it.
            self._retry.popleft()
            log.warning("dropped an unpublished envelope: %d are waiting", self.RETRY_LIMIT)
        self._retry.append(data)
        if not self._retrying:
            self._retrying = True
            threading.Thread(target=self._publish_held, name="chipper-publish", daemon=True).start()

    RETRY_LIMIT = 10_000

    def _publish_held(self) -> None:
        import redis

        delay = 0.05
        while True:
            with self._retry_lock:
                if not self._retry:
                    self._retrying = False
                    return
                data = self._retry[0]
            try:
                self.redis.publish(self.channel, data)
            except redis.RedisError:
                time.sleep(delay + random.uniform(0, delay / 2))
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            with self._retry_lock:
                if self._retry and self._retry[0] is data:
                    self._retry.popleft()

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
