"""The per-process hub: one pub/sub subscription shared by every stream of this process.

Envelopes (chipper.realtime.kinds.Envelope) travel on Redis as JSON, after the name of the
process that sent them. The hub hands each envelope to the local streams of its
recipients, through bounded queues so a slow client never holds up the others.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import os
import queue
import random
import threading
import time
import uuid

from chipper.realtime.kinds import Envelope

log = logging.getLogger(__name__)

# Seconds before publishing again after Redis refused; each failure doubles it, up to 2 s.
RETRY_FIRST = 0.05

# Tells a stream to catch up from the database: the hub may have missed envelopes.
RESYNC = Envelope("resync", None, [])


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

    def offer(self, seq: int | None, envelope: Envelope) -> None:
        if len(self.items) >= self.size:
            # Too slow: it will be closed and reconnect, replaying what it missed.
            self.dropped = True
        else:
            self.items.append((seq, envelope))
        self.ready.set()

    def get(self, timeout: float) -> tuple[int | None, Envelope]:
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

    def dispatch(self, envelope: Envelope) -> None:
        seqs = envelope.seqs or [None] * len(envelope.recipients)
        with self._lock:
            targets = [
                (client, seq)
                for uid, seq in zip(envelope.recipients, seqs, strict=True)
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

    def publish(self, envelope: Envelope) -> None:
        self.hub.dispatch(envelope)


class RedisBroker:
    """Hands each envelope to this process's streams at once, and to the other processes
    through one Redis channel; one subscriber thread per process feeds the hub.

    A request never waits for Redis: publish() queues the envelope for a publisher thread,
    which sends whatever has queued up in one pipeline and keeps retrying, in order, while
    Redis refuses. The subscriber skips what this process sent (its streams had it already)
    and survives Redis restarts: it reconnects with backoff and then tells every stream to
    catch up from the database.

    On the channel a message is `<origin> <envelope as JSON>`; the origin names the process.
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
        # Envelopes (as sent on the channel) not yet taken by Redis, oldest first; whether a
        # publisher thread is running, and what wakes it.
        self._outbox: collections.deque[bytes] = collections.deque()
        self._outbox_lock = threading.Lock()
        self._publishing = False
        self._more = threading.Event()

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

    def publish(self, envelope: Envelope) -> None:
        data = f"{_origin} {envelope.to_json()}".encode()
        # This process's streams need no round trip through Redis.
        self.hub.dispatch(envelope)
        with self._outbox_lock:
            if len(self._outbox) >= self.OUTBOX_LIMIT:
                # Streams elsewhere still get it: the next event of each recipient reveals
                # the gap, and a reconnect replays it.
                self._outbox.popleft()
                log.warning("dropped an unpublished envelope: %d are waiting", self.OUTBOX_LIMIT)
            self._outbox.append(data)
            if self._publishing:
                self._more.set()
                return
            self._publishing = True
        threading.Thread(target=self._publish_queued, name="chipper-publish", daemon=True).start()

    OUTBOX_LIMIT = 10_000
    # Most envelopes one pipeline sends, and how long an idle publisher thread waits for more
    # before it ends (a busy process keeps one thread instead of starting one per event).
    BATCH = 200
    LINGER = 5.0

    def _publish_queued(self) -> None:
        import redis

        delay = RETRY_FIRST
        while True:
            with self._outbox_lock:
                batch = list(itertools.islice(self._outbox, self.BATCH))
                if not batch:
                    self._more.clear()
            if not batch:
                if self._more.wait(self.LINGER):
                    continue
                with self._outbox_lock:
                    if not self._outbox:
                        self._publishing = False
                        return
                continue
            try:
                pipe = self.redis.pipeline(transaction=False)
                for data in batch:
                    pipe.publish(self.channel, data)
                pipe.execute()
            except redis.RedisError:
                # The changes are committed and their events stored: keep them, in order,
                # until Redis takes them. Publishing again reaches every process.
                if delay == RETRY_FIRST:  # once per outage, not at every attempt
                    log.warning("could not publish %s; will retry", _kinds(batch))
                time.sleep(delay + random.uniform(0, delay / 2))
                delay = min(delay * 2, 2.0)
                continue
            delay = RETRY_FIRST
            with self._outbox_lock:
                for data in batch:
                    # The oldest may have been dropped meanwhile (OUTBOX_LIMIT).
                    if self._outbox and self._outbox[0] is data:
                        self._outbox.popleft()

    def _listen_forever(self) -> None:
        import redis

        own = f"{_origin} ".encode()
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
                    data = message["data"]
                    if data.startswith(own):
                        continue  # sent by this process, which dispatched it already
                    try:
                        envelope = Envelope.from_json(data.partition(b" ")[2])
                    except (TypeError, ValueError, KeyError):
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


def _kinds(batch: list[bytes]) -> str:
    """What a batch holds, for the log: "message-created" or "message-created and 2 more"."""
    try:
        kind = json.loads(batch[0].partition(b" ")[2])["kind"]
    except (ValueError, KeyError, TypeError):
        kind = "an envelope"
    return kind if len(batch) == 1 else f"{kind} and {len(batch) - 1} more"


def _new_origin() -> None:
    global _origin
    _origin = uuid.uuid4().hex


# Names this process on the channel. A forked child (a gunicorn worker of an app loaded
# before the fork) takes a name of its own, or it would skip its parent's envelopes.
_origin = ""
_new_origin()
os.register_at_fork(after_in_child=_new_origin)
