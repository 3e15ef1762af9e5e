"""The per-process push sender: one background thread (a greenlet under gevent workers) that
runs push jobs one after another, so no request waits on a push service."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

from flask import Flask

from chipper.extensions import db

log = logging.getLogger(__name__)


class PushSender:
    # Jobs waiting beyond this are dropped: push services far behind should not grow the
    # process without bound. Notifications are a courtesy; the messages are stored anyway.
    LIMIT = 10_000

    def __init__(self, app: Flask):
        self.app = app
        self._jobs: collections.deque[tuple[Callable, tuple]] = collections.deque()
        self._changed = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None
        self.closed = False

    def submit(self, job: Callable, *args) -> None:
        """Runs `job(*args)` soon, in an app context of its own, on the sender thread."""
        with self._changed:
            if self.closed:
                return
            if len(self._jobs) >= self.LIMIT:
                log.warning("push sender is %d jobs behind; dropped one", self.LIMIT)
                return
            self._jobs.append((job, args))
            if self._thread is None:
                # Started on first use, in the process that serves (not a preloading parent).
                self._thread = threading.Thread(target=self._run, name="chipper-push", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._jobs or self.closed)
                if self.closed:
                    return
                job, args = self._jobs.popleft()
                self._running = True
            try:
                with self.app.app_context():
                    try:
                        job(*args)
                    finally:
                        db.session.remove()
            except Exception:
                # One bad job (or database hiccup) must not stop the ones after it.
                log.exception("push job %s failed", getattr(job, "__name__", job))
            finally:
                with self._changed:
                    self._running = False
                    self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Whether every job submitted so far has finished within `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._jobs and not self._running, timeout)

    def close(self, timeout: float = 15) -> None:
        """Drops waiting jobs and lets the one running finish (tests close each app's)."""
        with self._changed:
            self.closed = True
            self._jobs.clear()
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
