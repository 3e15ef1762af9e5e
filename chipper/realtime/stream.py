"""One open stream: its queue in the hub, putting numbered events back in order, filling gaps
from the events table, heartbeats. It knows nothing of conversations: whoever opens it says
what to do when the user comes online or goes offline.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Flask

from chipper.extensions import db
from chipper.realtime import store, wire
from chipper.realtime.hub import RESYNC
from chipper.realtime.kinds import KINDS, Envelope


@dataclass(frozen=True, slots=True)
class Settings:
    heartbeat: float  # seconds between comments on an idle stream
    replay_limit: int  # a reconnect replays at most this many events, else the page reloads
    gap_wait: float  # how long an event that came early waits for the one before it
    subscribe_wait: float  # how long a new stream waits for pub/sub before catching up

    @classmethod
    def of(cls, app: Flask) -> Settings:
        settings = app.extensions.get("chipper.stream_settings")
        if settings is None:
            c = app.config
            settings = app.extensions["chipper.stream_settings"] = cls(
                c["STREAM_HEARTBEAT"],
                c["STREAM_REPLAY_LIMIT"],
                c["STREAM_GAP_WAIT"],
                c["STREAM_SUBSCRIBE_WAIT"],
            )
        return settings


class Stream:
    """The frames of one user's stream, from `resume` (or from now) on, as bytes."""

    __slots__ = (
        "app",
        "user_id",
        "session",
        "fmt",
        "resume",
        "latest",
        "settings",
        "came",
        "left",
        "id",
    )

    def __init__(
        self,
        app: Flask,
        user_id: int,
        *,
        fmt: str,
        resume: int | None,
        latest: int,
        came: Callable[[int], None],
        left: Callable[[int], None],
        session: int | None = None,
    ):
        self.app = app
        self.user_id = user_id
        self.session = session  # the sign-in it was opened under: ending that ends the stream
        self.fmt = fmt
        self.resume = resume
        self.latest = latest  # the number of the user's latest stored event when it opened
        self.settings = Settings.of(app)
        # came(user_id) runs (in an app context) when this is the user's first open stream;
        # left(user_id) when this one closes (other streams of theirs may still be open).
        self.came = came
        self.left = left
        self.id = uuid.uuid4().hex

    def __iter__(self) -> Iterator[bytes]:
        realtime = self.app.extensions["chipper.realtime"]
        client = realtime.hub.register(self.user_id)
        present = False
        try:
            # Bytes at once, so proxies and EventSource see an open stream straight away.
            yield b": connected\nretry: 2000\n\n"
            if self.resume is not None and self.resume > self.latest:
                # A position this user never reached: the page comes from another database
                # (restored or reset). Replaying from it would skip everything up to it.
                yield wire.frame("reload", "the server's history changed").encode()
                return
            # A stream without a resume point starts from now, never from the whole history.
            order = InOrder(self.latest if self.resume is None else self.resume, self.latest)
            # Catch up only once the subscription is up, so nothing committed between the
            # catch-up and the first live event slips through. If Redis is away the stream
            # stays open and catches up when pub/sub is back (the hub resyncs every stream).
            realtime.broker.wait_ready(self.settings.subscribe_wait)
            with self.app.app_context():
                present = True
                if realtime.presence.connect(self.user_id, self.id):
                    self.came(self.user_id)
            # The stream's name, once it is known to presence: the page reports whether its
            # tab is visible under it (POST /stream/visibility).
            yield wire.frame("hello", json.dumps({"stream": self.id})).encode()
            yield from self._live(client, order, realtime.presence)
        finally:
            realtime.hub.unregister(client)
            if present:
                realtime.presence.disconnect(self.user_id, self.id)
                with self.app.app_context():
                    self.left(self.user_id)

    def _live(self, client, order: InOrder, presence) -> Iterator[bytes]:
        text, going_on = self._catch_up(order)
        if text:
            yield text.encode()
        if not going_on:
            return
        heartbeat, gap_wait = self.settings.heartbeat, self.settings.gap_wait
        marked = time.monotonic()
        while True:
            if time.monotonic() - marked >= heartbeat:
                # A busy stream never idles long enough for the heartbeat below.
                presence.refresh(self.user_id, self.id)
                marked = time.monotonic()
            gap = order.gap_age()
            try:
                if gap is not None and gap >= gap_wait:
                    # An earlier event never came live (its publish failed, or another
                    # process is slow to send it): take it from the database.
                    raise queue.Empty
                seq, envelope = client.get(timeout=heartbeat if gap is None else gap_wait - gap)
            except queue.Empty:
                if gap is None:
                    yield b": heartbeat\n\n"
                    continue
                seq, envelope = None, RESYNC
            if client.dropped:
                return
            if envelope is RESYNC:
                text, going_on = self._catch_up(order)
                if text:
                    yield text.encode()
                if not going_on:
                    return
            elif KINDS[envelope.kind].ends_streams:
                if self.session in envelope.data.get("ids", ()):
                    yield wire.frame("signed-out", "").encode()
                    return
            elif seq is None:  # live only: typing, presence
                yield wire.frames(envelope, self.user_id, self.fmt, None).encode()
            elif ready := order.live(seq, envelope):
                yield self._text(ready).encode()

    def _catch_up(self, order: InOrder) -> tuple[str, bool]:
        """Stored events the stream has not sent yet, as text, and whether the stream can go
        on: when some are gone (pruned) or too many, the text tells the page to reload."""
        limit = self.settings.replay_limit
        with self.app.app_context():
            rows = store.missed(self.user_id, order.last, limit + 1)
            db.session.remove()
        if len(rows) > limit or not order.replay_is_whole(rows):
            return wire.frame("reload", "too much was missed"), False
        return self._text(order.replayed(rows)), True

    def _text(self, ready: list[tuple[int, Envelope]]) -> str:
        return "".join(wire.frames(e, self.user_id, self.fmt, seq) for seq, e in ready)


class InOrder:
    """Puts one user's numbered events back in order and says what is missing.

    The numbers come from the user's gap-free sequence (EventRecipient.seq), so event N+1 is
    written only after N, and never twice, whichever process publishes first.
    """

    __slots__ = ("last", "known", "early", "gap_since")

    def __init__(self, last: int, known: int):
        self.last = last  # the highest number sent, everything below it sent too
        self.known = known  # the highest number known to be stored
        self.early: dict[int, Envelope] = {}
        self.gap_since: float | None = None

    def live(self, seq: int, envelope: Envelope) -> list[tuple[int, Envelope]]:
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

    def replay_is_whole(self, rows: list[tuple[int, Envelope]]) -> bool:
        """Whether stored rows continue right after `last`: old events are pruned, and a
        stream asking for them must reload instead of skipping them."""
        if rows:
            return rows[0][0] <= self.last + 1
        return self.known <= self.last

    def replayed(self, rows: list[tuple[int, Envelope]]) -> list[tuple[int, Envelope]]:
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
