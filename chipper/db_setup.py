"""Per-connection database settings, and SQLite's checkpoints off the request path."""

import logging
import sqlite3
import weakref

import sqlalchemy as sa
from flask import Flask

from chipper.extensions import db

log = logging.getLogger(__name__)

# With checkpoints in the background, a connection still checkpoints by itself once the
# write-ahead log reaches this many pages (about 40 MB): the log stays bounded even if the
# background thread stops.
FALLBACK_CHECKPOINT_PAGES = 10_000


def _sqlite_pragmas(dbapi_connection, _record, background: bool) -> None:
    # WAL lets readers and one writer work at once; the busy timeout makes a second writer
    # wait instead of failing with "database is locked"; SQLite enforces foreign keys only
    # when asked.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    if background:
        cursor.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_CHECKPOINT_PAGES}")
    cursor.close()


class _Switch:
    """Whether checkpoints run in the background, for the connections of one engine."""

    on = False


# One switch per engine (an app's, or the one the test apps share), kept apart from the app:
# flask_sqlalchemy keeps engines in a dict weakly keyed by the app, and a listener holding the
# app would keep both alive for good.
_switches: "weakref.WeakKeyDictionary[sa.Engine, _Switch]" = weakref.WeakKeyDictionary()


def init_app(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            if (switch := _switches.get(engine)) is None:
                switch = _switches[engine] = _Switch()

                def pragmas(dbapi_connection, record):
                    _sqlite_pragmas(dbapi_connection, record, switch.on)

                sa.event.listen(engine, "connect", pragmas)
            app.extensions["chipper.checkpoints"] = switch


class Checkpointer:
    """What checkpoint_in_background() started; stop() ends it within one interval."""

    def __init__(self, path: str, interval: float):
        self.path = path
        self.interval = interval
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def run(self, sleep) -> None:
        connection = None
        while not self.stopped:
            sleep(self.interval)
            try:
                if connection is None:
                    # mode=rw: never creates the file again if it was removed.
                    connection = sqlite3.connect(
                        f"file:{self.path}?mode=rw", uri=True, isolation_level=None
                    )
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as error:
                log.warning("background checkpoint failed: %s", error)
                if connection is not None:
                    connection.close()
                    connection = None
        if connection is not None:
            connection.close()


def checkpoint_in_background(app: Flask, interval: float = 1.0) -> Checkpointer | None:
    """Copies SQLite's write-ahead log into the database file from a thread of its own.

    By default the commit that takes the log past 1,000 pages does that copy and its fsync
    itself: under load (bench/RESULTS.md, finding 9) that stalled a gevent worker, and every
    stream and request on it, about twice a second. Here an OS thread (not a greenlet:
    SQLite's C code releases the GIL, not the gevent loop) checkpoints every `interval`
    seconds, in the PASSIVE mode that never waits for readers or writers. Only for a SQLite
    file; None otherwise.
    """
    with app.app_context():
        url = db.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        app.extensions["chipper.checkpoints"].on = True
        # Pooled connections were opened with the default; new ones get the fallback.
        db.engine.dispose()
    checkpointer = Checkpointer(url.database, interval)
    start, sleep = _os_thread_tools()
    start(checkpointer.run, (sleep,))
    return checkpointer


def _os_thread_tools():
    """Starting a real OS thread, and sleeping in it, even where gevent patched threading."""
    from gevent import monkey

    return (
        monkey.get_original("_thread", "start_new_thread"),
        monkey.get_original("time", "sleep"),
    )
