"""Production serving: `gunicorn -c gunicorn.conf.py wsgi:app`.

gevent workers hold thousands of idle event streams cheaply. Every setting can be overridden
from the environment.
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
# Requests are parsed in C (gunicorn_h1c, a dependency): 6 % less worker CPU per message sent
# than gunicorn's Python parser (bench/RESULTS.md, finding 11). "fast" fails at start-up
# rather than falling back to the slower parser if the package is missing.
http_parser = os.environ.get("HTTP_PARSER", "fast")
# gunicorn's default of 1,000 silently refuses every connection past it: each open tab holds
# one stream.
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "10000"))
# Seconds an idle keep-alive connection stays open. Browsers reuse theirs for minutes; at 5 s
# (gunicorn's default is 2) someone chatting every few seconds paid a new TCP connection for
# nearly every message. An idle connection costs a worker no more than an idle stream.
keepalive = int(os.environ.get("KEEPALIVE", "65"))
graceful_timeout = 10
timeout = 60
accesslog = os.environ.get("ACCESS_LOG") or None
# gunicorn 27 puts every instance's control socket at one path in $HOME, so two servers on one
# host take it from each other; Chipper does not use it.
control_socket_disable = True


def on_starting(server):
    # Without Redis each process only sees its own events: users on another worker would
    # miss live updates.
    if server.cfg.workers > 1 and not os.environ.get("REDIS_URL"):
        raise SystemExit("Set REDIS_URL to run more than one worker (or WEB_CONCURRENCY=1).")


def post_worker_init(worker):
    # A full (oldest generation) garbage collection walks every object of every open stream,
    # about 150 each: with 2,500 streams in a worker that paused it for 90 to 340 ms
    # (bench/RESULTS.md). Freeze what the app loaded at start, and collect the old
    # generations far less often; streams make little cyclic garbage.
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 50, 100)

    # SQLite: copy the write-ahead log into the database file from a thread of this worker,
    # not inside whichever request's commit fills it (a stall of the whole worker).
    from chipper.db_setup import checkpoint_in_background

    checkpoint_in_background(worker.wsgi)
