"""One scheduler per app for every timed job: "in N seconds" (a ring timeout, presence's
offline grace) and "every N seconds" (sweeps, pruning). Every delay and interval comes from
app config, so tests set milliseconds instead of sleeping for seconds.

Jobs run in the app context, each in a thread of its own, so a slow one holds up no other;
a job that fails is logged and the next one still runs. The scheduler's thread starts with the
first job that is due in this process, or with the first request when periodic jobs are
registered: a gunicorn worker forked from a loaded app starts its own, none is carried across
the fork.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

from flask import Flask

from chipper.extensions import db

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, app: Flask):
        self.app = app
        self._due: list[tuple[float, int, Callable, tuple, float | None]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._pid: int | None = None  # the process whose thread runs the jobs
        self._running: set[threading.Thread] = set()
        self._periodic: list[tuple[float, Callable]] = []
        self.closed = False

    def after(self, delay: float, job: Callable, *args) -> None:
        """Runs job(*args) once, `delay` seconds from now."""
        self._push(time.monotonic() + delay, job, args, None)

    def every(self, interval: float, job: Callable) -> None:
        """Runs job() every `interval` seconds in each process that serves requests; a job
        asked for before the first request starts with it."""
        if interval <= 0:
            raise ValueError(f"{name_of(job)}: the interval must be positive")
        self._periodic.append((interval, job))
        if self._pid == os.getpid():
            self._push(time.monotonic() + interval, job, (), interval)

    def start(self) -> None:
        """Starts this process's thread, with the periodic jobs, if it is not running."""
        with self._wake:
            if self._pid == os.getpid() or self.closed:
                return
            self._pid = os.getpid()
            # A forked child inherits its parent's list but not its thread.
            self._due = [item for item in self._due if item[4] is None]
            heapq.heapify(self._due)
            now = time.monotonic()
            for interval, job in self._periodic:
                heapq.heappush(self._due, (now + interval, next(self._order), job, (), interval))
            threading.Thread(target=self._loop, name="chipper-jobs", daemon=True).start()

    def close(self, timeout: float = 5.0) -> None:
        """Runs nothing more, and waits up to `timeout` seconds for jobs already running."""
        with self._wake:
            self.closed = True
            self._due.clear()
            self._wake.notify_all()
            running = list(self._running)
        for thread in running:
            thread.join(timeout)

    def _push(self, when: float, job: Callable, args: tuple, interval: float | None) -> None:
        with self._wake:
            if self.closed:
                return
            heapq.heappush(self._due, (when, next(self._order), job, args, interval))
            self._wake.notify_all()
        self.start()

    def _loop(self) -> None:
        with self._wake:
            while not self.closed:
                if not self._due:
                    self._wake.wait()
                    continue
                when, _, job, args, interval = self._due[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._due)
                if interval is not None:
                    heapq.heappush(
                        self._due, (when + interval, next(self._order), job, args, interval)
                    )
                thread = threading.Thread(
                    target=self._run, args=(job, args), name=name_of(job), daemon=True
                )
                self._running.add(thread)
                thread.start()

    def _run(self, job: Callable, args: tuple) -> None:
        try:
            with self.app.app_context():
                try:
                    job(*args)
                finally:
                    db.session.remove()
        except Exception:
            log.exception("job %s failed", name_of(job))
        finally:
            with self._wake:
                self._running.discard(threading.current_thread())


def name_of(job: Callable) -> str:
    return f"{job.__module__}.{job.__qualname__}"


def scheduler_of(app: Flask) -> Scheduler:
    return app.extensions["chipper.jobs"]


def init_app(app: Flask) -> None:
    scheduler = app.extensions["chipper.jobs"] = Scheduler(app)

    @app.before_request
    def start_jobs():
        if scheduler._periodic:
            scheduler.start()
