#!/usr/bin/env python
"""Fan-out benchmark for Chipper's live updates (GET /stream). Not a test.

    .venv/bin/python bench/fanout.py --scenario a  # 1,000 streams, 200 conversations, 200/s, 60 s
    .venv/bin/python bench/fanout.py --scenario b  # 5,000 streams, 1,000 conversations, 200/s, 60 s
    .venv/bin/python bench/fanout.py --streams 2000 --conversations 400 --rate 300 --duration 30
    .venv/bin/python bench/fanout.py --scenario a \\
        --database-url postgresql+psycopg://root@127.0.0.1:5432/test   # a throwaway schema in it

What it does, in order:

1. Starts a throwaway `redis-server` (from PATH) on a free port and creates a fresh database:
   a SQLite file in a temporary directory, or a throwaway schema in the PostgreSQL database given
   by --database-url (dropped at the end). The schema comes from the app's migrations
   (`flask db upgrade`); users (one per stream, all with the same password hash, computed once),
   group conversations (streams / conversations members each; every user is in exactly one) and
   10 messages of history per conversation are inserted directly inside create_app().
2. Signs one real Flask session cookie per user (Flask-Login's login_user + Flask-WTF's
   generate_csrf in a request context, serialised with the app's session serializer and
   SECRET_KEY): what logging in would set, without thousands of password hashes.
3. Starts the app the production way: `gunicorn -c gunicorn.conf.py wsgi:app` with
   WEB_CONCURRENCY=2, WORKER_CONNECTIONS=streams+1000 (per worker: the kernel does not balance
   connections between workers), REDIS_URL and DATABASE_URL set. It warms both workers up.
4. Measures the RSS of the gunicorn workers (VmRSS) with 0 streams open.
5. A separate load-generator process (asyncio, raw sockets, minimal HTTP/1.1 + chunked + SSE
   parsing) opens N streams (GET /stream, one per user), waits for every `: connected`, and
   timestamps every `message-created` frame it reads.
6. Measures the workers' RSS again with N idle streams open: memory per idle stream =
   delta / N; then the workers' CPU with every stream idle for --idle-window s (heartbeats).
7. Probe phase (all stream slots held): GET /conversations, GET /conversations/<id> and
   POST /conversations/<id>/messages, each open-loop at --probe-rate per second for
   --probe-duration seconds; p50/p99 latency.
8. Fan-out phase: POST /conversations/<id>/messages (JSON, X-CSRFToken + session cookie of a
   member) open-loop at --rate per second for --duration seconds: send times are scheduled in
   advance and each request fires at its time whatever the earlier ones are doing (no
   coordinated omission). The message body carries the *scheduled* send time
   (time.time_ns(): same host, same clock), so a late load generator or a slow server both
   count against latency. Conversations take turns; the sender is a member, taking turns too,
   over its own keep-alive connection (as its browser would).
9. Drains, then reports: messages sent, deliveries expected (for each message answered 201,
   the members with an open stream at its send time; the sender's own tab included) vs
   delivered (de-duplicated; duplicates reported), p50/p90/p99/p99.9/max send->delivery
   latency, POST latency during fan-out, server CPU per message, memory per idle stream, probe
   latencies, CPU used by each process (gunicorn workers, redis, the two load-generator
   processes, PostgreSQL if local) and by the rest of the machine, how many users Redis still
   shows online (each stream keeps its presence mark alive while it is open), tracebacks
   and failed publishes in the gunicorn log, and how long this machine took for a fixed
   piece of pure Python before and after the run (hosts of this kind differ, and drift).

It prints a table and rewrites this scenario's section of bench/RESULTS.md (sections of other
scenarios, and any text outside the sections, are kept).

This is a 2-core box, load generator included: another job running at the same time skews
every latency. --wait-quiet S waits (up to S s) for the rest of the machine to go quiet before
starting, and a run during which the rest of the machine used more than NOISE_LIMIT % of a core
is flagged in its table. Time the hypervisor gave to other machines ("stolen") is reported on
its own and counts as noise too. RLIMIT_NOFILE is raised to its hard limit here (gunicorn and
Redis inherit it) and in the stream process. gunicorn and Redis die with this script.

Dependencies: none beyond the app's and its test extras (asyncio and raw sockets for the load;
httpx and redis-py for readiness checks; psycopg for --database-url). Options: --help.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's chipper (also when run from a scratch copy)
VENV_BIN = Path(sys.executable).parent
USER_AGENT = "chipper-bench/1"
HOST = "127.0.0.1"
TOKEN = re.compile(rb"b:(\d{19}):(\d+)")
CLK_TCK = os.sysconf("SC_CLK_TCK")
NOISE_LIMIT = 25  # % of one core used by the rest of the machine above which a run is flagged

SCENARIOS = {
    # name: (streams, conversations, rate, duration, targets)
    "a": dict(
        streams=1000,
        conversations=200,
        rate=200,
        duration=60,
        targets={"p99_ms": 25},
        title="(a) 1,000 streams over 200 conversations, 200 messages/s",
    ),
    "b": dict(
        streams=5000,
        conversations=1000,
        rate=200,
        duration=60,
        targets={"p99_ms": 50, "kb_per_stream": 25, "probe_p99_ms": 100},
        title="(b) 5,000 streams over 1,000 conversations, 200 messages/s",
    ),
}


# ---------------------------------------------------------------------------------------------
# Small helpers


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if this script dies (even by SIGKILL)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def percentile(sorted_values, q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def summarize_ms(values_ns) -> dict:
    v = sorted(values_ns)
    if not v:
        return {"n": 0}
    ms = 1e6
    return {
        "n": len(v),
        "p50": percentile(v, 50) / ms,
        "p90": percentile(v, 90) / ms,
        "p99": percentile(v, 99) / ms,
        "p999": percentile(v, 99.9) / ms,
        "max": v[-1] / ms,
    }


def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError):
        return 0


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(entry))
        except (OSError, IndexError):
            continue
    return sorted(out)


def connections_per_worker(pids: list[int], port: int) -> list[int]:
    """Established client connections to `port` held by each process (its streams, once
    nothing else is in flight): /proc/net/tcp inodes matched against each process's fds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            pass
    counts = []
    for pid in pids:
        n = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    n += 1
        except OSError:
            pass
        counts.append(n)
    return counts


def fmt(x, digits=1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != x:  # nan
            return "-"
        return f"{x:,.{digits}f}"
    return f"{x:,}"


# ---------------------------------------------------------------------------------------------
# Minimal HTTP/1.1 client (keep-alive pool) for the sender and the probes


class HTTPPool:
    """Keep-alive connections to one server; a request waits for a connection only when
    `limit` are already busy (its latency still counts from its scheduled time)."""

    # A browser reuses a connection for as long as the server keeps it open (gunicorn.conf.py's
    # keepalive, 65 s); a little less, so it never sends on one the server is closing.
    IDLE_MAX = 60.0

    def __init__(self, host: str, port: int, limit: int = 1000):
        self.host, self.port = host, port
        self.idle: dict = {}
        self.sem = asyncio.Semaphore(limit)
        self.opened = 0

    async def request(self, raw: bytes, key=None) -> tuple[int, bytes]:
        """`key`: whose browser sends it. Each user gets its own keep-alive connection, as a
        browser would: the kernel then spreads users over the workers as it spreads browsers."""
        async with self.sem:
            idle = self.idle.setdefault(key, [])
            for attempt in range(2):
                conn = None
                now = time.monotonic()
                while idle:
                    t, r, w = idle.pop()
                    if now - t < self.IDLE_MAX:
                        conn = (r, w)
                        break
                    w.close()
                reused = conn is not None
                if conn is None:
                    conn = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
                    self.opened += 1
                reader, writer = conn
                try:
                    writer.write(raw)
                    status, body, keep = await self._response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    writer.close()
                    if reused and attempt == 0:
                        continue  # the server closed an idle keep-alive connection: retry once
                    raise
                if keep:
                    idle.append((time.monotonic(), reader, writer))
                else:
                    writer.close()
                return status, body
            raise OSError("unreachable")

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        chunked = False
        keep = True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and value == b"close":
                keep = False
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size + 2))
            body = b"".join(p[:-2] for p in parts)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body = await reader.read()
            keep = False
        return status, body, keep


def get_request(path: str, cookie: str, accept: str = "text/html", port: int = 0) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
        f"Accept: {accept}\r\nCookie: session={cookie}\r\n\r\n"
    ).encode()


def post_message_request(cid: int, cookie: str, csrf: str, body: str, port: int) -> bytes:
    payload = json.dumps({"body": body}).encode()
    return (
        f"POST /conversations/{cid}/messages HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"User-Agent: {USER_AGENT}\r\nAccept: application/json\r\n"
        f"Content-Type: application/json\r\nX-CSRFToken: {csrf}\r\n"
        f"Cookie: session={cookie}\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def open_loop(rate: float, duration: float, fire, start: float | None = None) -> dict:
    """Calls fire(k, scheduled_time) at start + k/rate whatever earlier calls are doing.
    Returns how late the generator itself fired (should stay ~0)."""
    n = int(rate * duration)
    start = start or time.time() + 0.05
    tasks = []
    lags = []
    for k in range(n):
        t = start + k / rate
        delay = t - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(time.time() - t)
        tasks.append(asyncio.create_task(fire(k, t)))
    await asyncio.gather(*tasks)
    lags.sort()
    return {"n": n, "lag_p99_ms": percentile(lags, 99) * 1e3, "lag_max_ms": lags[-1] * 1e3}


# ---------------------------------------------------------------------------------------------
# The stream-reader process


class StreamProto(asyncio.Protocol):
    """One GET /stream: de-chunks and splits SSE frames with bytes.find, and timestamps each
    message-created frame (the body carries b:<scheduled send ns>:<seq>)."""

    def __init__(self, idx: int, request: bytes, sink):
        self.idx = idx
        self.request = request
        self.sink = sink
        self.buf = bytearray()
        self.sse = bytearray()
        self.head = True
        self.chunk_left = 0
        self.crlf = 0
        self.ready = asyncio.get_running_loop().create_future()
        self.transport = None
        self.opened_ns = 0
        self.closed_ns = 0
        self.status = 0

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        now = time.time_ns()
        buf = self.buf
        buf += data
        if self.head:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head = bytes(buf[:i])
            del buf[: i + 4]
            self.status = int(head[9:12])
            self.head = False
            if self.status != 200 or b"chunked" not in head.lower():
                if not self.ready.done():
                    self.ready.set_exception(OSError(f"HTTP {self.status}"))
                self.transport.close()
                return
        out = self.sse
        while buf:
            if self.crlf:
                n = min(self.crlf, len(buf))
                del buf[:n]
                self.crlf -= n
                continue
            if self.chunk_left == 0:
                i = buf.find(b"\r\n")
                if i < 0:
                    break
                size = int(bytes(buf[:i]).split(b";", 1)[0], 16)
                del buf[: i + 2]
                if size == 0:
                    self.transport.close()
                    break
                self.chunk_left = size
                continue
            n = min(self.chunk_left, len(buf))
            out += buf[:n]
            del buf[:n]
            self.chunk_left -= n
            if self.chunk_left == 0:
                self.crlf = 2
        start = 0
        while True:
            j = out.find(b"\n\n", start)
            if j < 0:
                break
            if out.startswith(b"event: message-created", start):
                m = TOKEN.search(out, start, j)
                if m:
                    self.sink.record(self.idx, int(m[2]), now - int(m[1]))
            elif not self.ready.done() and out.startswith(b": connected", start):
                self.opened_ns = now
                self.ready.set_result(True)
            start = j + 2
        if start:
            del out[:start]

    def connection_lost(self, exc):
        self.closed_ns = time.time_ns()
        if not self.ready.done():
            self.ready.set_exception(exc or OSError("closed before : connected"))
        self.sink.lost(self)


class Sink:
    def __init__(self):
        self.idx = array("i")
        self.seq = array("q")
        self.lat = array("q")
        self.stopping = False
        self.lost_streams: list[tuple[int, int]] = []

    def record(self, idx, seq, lat):
        self.idx.append(idx)
        self.seq.append(seq)
        self.lat.append(lat)

    def lost(self, proto):
        if not self.stopping:
            self.lost_streams.append((proto.idx, proto.closed_ns))


def stream_process(conn, port: int, cookies: list[str], concurrency: int, fmt_json: bool):
    raise_nofile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_stream_main(conn, port, cookies, concurrency, fmt_json))


async def _stream_main(conn, port, cookies, concurrency, fmt_json):
    loop = asyncio.get_running_loop()
    sink = Sink()
    protos: list[StreamProto | None] = [None] * len(cookies)
    commands: asyncio.Queue = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    path = "/stream?format=json" if fmt_json else "/stream"

    async def open_one(i: int, sem: asyncio.Semaphore, open_lat: list, errors: list):
        req = get_request(path, cookies[i], "text/event-stream", port)
        async with sem:
            t0 = time.time_ns()
            try:
                _, proto = await loop.create_connection(
                    lambda: StreamProto(i, req, sink), HOST, port
                )
                await asyncio.wait_for(proto.ready, 60)
            except (OSError, TimeoutError) as e:
                errors.append(repr(e))
                return
            protos[i] = proto
            open_lat.append(proto.opened_ns - t0)

    while True:
        cmd, arg = await commands.get()
        if cmd == "open":
            indices = arg
            sem = asyncio.Semaphore(concurrency)
            open_lat: list[int] = []
            errors: list[str] = []
            t0 = time.time()
            await asyncio.gather(*(open_one(i, sem, open_lat, errors) for i in indices))
            conn.send(
                {
                    "opened": len(open_lat),
                    "errors": errors[:5],
                    "n_errors": len(errors),
                    "seconds": time.time() - t0,
                    "open_ms": summarize_ms(open_lat),
                    "opened_at": {i: protos[i].opened_ns for i in indices if protos[i]},
                }
            )
        elif cmd == "count":
            conn.send({"delivered": len(sink.seq), "lost": len(sink.lost_streams)})
        elif cmd == "close":
            sink.stopping = True
            for p in protos:
                if p and p.transport:
                    p.transport.close()
            conn.send(
                {
                    "idx": sink.idx.tobytes(),
                    "seq": sink.seq.tobytes(),
                    "lat": sink.lat.tobytes(),
                    "lost": sink.lost_streams,
                }
            )
            await asyncio.sleep(0.2)
            return


# ---------------------------------------------------------------------------------------------
# Setup: Redis, database, users, cookies, gunicorn


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="chipper-bench-"))
        self.procs: list[subprocess.Popen] = []
        self.secret_key = secrets.token_hex(32)
        self.redis_port = free_port()
        self.port = free_port()
        self.schema = None
        self.base_db_url = args.database_url
        self.group_size = args.streams // args.conversations
        self.users = args.streams
        self.info: dict = {}

    # -- redis

    def start_redis(self):
        exe = shutil.which("redis-server")
        if not exe:
            raise SystemExit("redis-server is not on PATH")
        p = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.redis_port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "30000",
                "--logfile",
                str(self.tmp / "redis.log"),
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self.procs.append(p)
        self.redis_proc = p
        import redis

        r = redis.Redis(host=HOST, port=self.redis_port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise SystemExit("redis-server did not start")
        self.redis = r
        self.redis_url = f"redis://{HOST}:{self.redis_port}/0"

    # -- database

    def database_url(self) -> str:
        if not self.base_db_url:
            return f"sqlite:///{self.tmp / 'bench.sqlite3'}"
        import sqlalchemy as sa

        self.schema = f"bench_{os.getpid()}_{secrets.token_hex(3)}"
        engine = sa.create_engine(self.base_db_url)
        with engine.begin() as c:
            c.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
        engine.dispose()
        sep = "&" if "?" in self.base_db_url else "?"
        return f"{self.base_db_url}{sep}options=-csearch_path%3D{self.schema}"

    def drop_schema(self):
        if not self.schema:
            return
        import sqlalchemy as sa

        engine = sa.create_engine(self.base_db_url)
        with engine.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        engine.dispose()

    def setup_data(self):
        """Schema through the migrations, then users, conversations and history in bulk, and one
        signed session cookie (+ CSRF token) per user."""
        import logging

        import flask_migrate
        import sqlalchemy as sa
        from flask import g, session
        from flask_login import login_user
        from flask_wtf.csrf import generate_csrf
        from werkzeug.security import generate_password_hash

        from chipper import create_app
        from chipper.cli import init_migrations
        from chipper.extensions import db
        from chipper.models import Conversation, Message, Participant, User
        from chipper.services import sessions

        self.db_url = self.database_url()
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": self.db_url,
                "SECRET_KEY": self.secret_key,
                "REDIS_URL": "",
                "UPLOAD_FOLDER": str(self.tmp / "uploads"),
            }
        )
        t0 = time.time()
        n, c, size = self.users, self.args.conversations, self.group_size
        init_migrations(app)  # Flask-Migrate is set up by `flask db` only
        with app.app_context():
            logging.getLogger("alembic").setLevel(logging.WARNING)
            flask_migrate.upgrade()
            pw = generate_password_hash("bench-password")  # once, shared by every user
            db.session.execute(
                sa.insert(User),
                [
                    {"id": i, "name": f"User {i}", "email": f"u{i}@bench.test", "password_hash": pw}
                    for i in range(1, n + 1)
                ],
            )
            db.session.execute(
                sa.insert(Conversation),
                [
                    {"id": k, "type": "group", "name": f"Bench {k}", "created_by": k}
                    for k in range(1, c + 1)
                ],
            )
            # user u (1-based) is in conversation ((u-1) % c) + 1: members k, k+c, k+2c, ...
            db.session.execute(
                sa.insert(Participant),
                [{"conversation_id": (u - 1) % c + 1, "user_id": u} for u in range(1, n + 1)],
            )
            db.session.execute(
                sa.insert(Message),
                [
                    {"conversation_id": k, "user_id": k + (j % size) * c, "body": f"history {j}"}
                    for k in range(1, c + 1)
                    for j in range(10)
                ],
            )
            if db.engine.dialect.name == "postgresql":
                for table in ("users", "conversations"):
                    db.session.execute(
                        sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))"
                        )
                    )
            db.session.commit()
            users = {u.id: u for u in db.session.scalars(sa.select(User))}
            serializer = app.session_interface.get_signing_serializer(app)
            self.cookies, self.csrf = [], []
            for uid in range(1, n + 1):
                with app.test_request_context(
                    "/", headers={"User-Agent": USER_AGENT}, environ_base={"REMOTE_ADDR": HOST}
                ):
                    # The request context shares the outer app context and so its `g`, where
                    # Flask-WTF caches the token: forget the previous user's.
                    g.pop("csrf_token", None)
                    # A sign-in row each, as a real login makes (its token is the session's).
                    login_user(sessions.start(users[uid], USER_AGENT))
                    self.csrf.append(generate_csrf())
                    self.cookies.append(serializer.dumps(dict(session)))
            self.dialect = db.engine.dialect.name
            db.session.remove()
            db.engine.dispose()
        self.info["setup_s"] = time.time() - t0

    def members(self, cid: int) -> list[int]:
        """0-based stream/user indices of conversation cid (1-based)."""
        c = self.args.conversations
        return [cid - 1 + j * c for j in range(self.group_size)]

    # -- gunicorn

    def start_gunicorn(self):
        env = dict(os.environ)
        env.update(
            BIND=f"{HOST}:{self.port}",
            WEB_CONCURRENCY=str(self.args.workers),
            WORKER_CONNECTIONS=str(self.args.streams + 1000),
            REDIS_URL=self.redis_url,
            REDIS_PREFIX="chipper",
            DATABASE_URL=self.db_url,
            SECRET_KEY=self.secret_key,
            UPLOAD_FOLDER=str(self.tmp / "uploads"),
            # The bench floods on purpose.
            RATELIMIT_ENABLED="0",
        )
        if self.args.heartbeat:
            env["STREAM_HEARTBEAT"] = str(self.args.heartbeat)
        self.gunicorn_log = open(self.tmp / "gunicorn.log", "wb")  # noqa: SIM115 (closed in stop)
        p = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=self.gunicorn_log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self.procs.append(p)
        self.gunicorn = p
        import httpx

        deadline = time.time() + 60
        while time.time() < deadline:
            if p.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {self.tmp / 'gunicorn.log'}")
            try:
                r = httpx.get(
                    f"http://{HOST}:{self.port}/login", headers={"Accept": "application/json"}
                )
                if r.status_code == 200 and len(children(p.pid)) >= self.args.workers:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("gunicorn did not answer")
        self.workers = children(p.pid)

    def worker_rss_kb(self) -> list[int]:
        return [rss_kb(pid) for pid in self.workers]

    def stop(self):
        # gunicorn first (its streams and timers still talk to Redis while it shuts down)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if getattr(self, "gunicorn_log", None):
            self.gunicorn_log.close()
        try:
            self.drop_schema()
        except Exception as e:  # noqa: BLE001
            print(f"could not drop schema {self.schema}: {e}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# The run


async def warm_up(bench: Bench, pool: HTTPPool, port: int):
    """Every code path once per worker (pages, a send, a stream that opens and closes), so
    lazy imports, template compilation and the pub/sub subscriber are not counted as
    per-stream memory."""
    uids = random.sample(range(bench.users), min(40, bench.users))
    for i in uids:
        cid = i % bench.args.conversations + 1
        await pool.request(get_request("/conversations", bench.cookies[i], port=port), i)
        await pool.request(get_request(f"/conversations/{cid}", bench.cookies[i], port=port), i)
        await pool.request(
            post_message_request(cid, bench.cookies[i], bench.csrf[i], "warm-up", port), i
        )
    # Streams that open and close again, on both workers (the kernel picks the worker).
    writers = []
    for i in uids:
        r, w = await asyncio.open_connection(HOST, port)
        w.write(get_request("/stream", bench.cookies[i], "text/event-stream", port))
        writers.append((r, w))
    for r, _ in writers:
        await r.readuntil(b": connected")
    for _, w in writers:
        w.close()
    await asyncio.sleep(5)  # OFFLINE_GRACE (4 s) timers fire and finish


def python_speed() -> float:
    """Seconds this machine takes for a fixed piece of pure Python (10 million additions in a
    loop): hosts of one machine kind differ, and one host's speed drifts within an hour, so a
    run's latencies are read against it."""
    t = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - t


def busy_ticks() -> int:
    """CPU time used by everything on the machine (all cores), from /proc/stat."""
    return _proc_stat()[0]


def steal_ticks() -> int:
    """CPU time the hypervisor gave to other machines while this one wanted it."""
    return _proc_stat()[1]


def _proc_stat() -> tuple[int, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    # counted in user and nice.
    return sum(v[:8]) - v[3] - v[4], v[7]


def postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (its backends serve the app)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "postgres":
                        out.append(int(entry))
            except OSError:
                pass
    return out


def pids_cpu(pids: dict[str, int | None]) -> dict[str, int]:
    """CPU ticks per named process; the name "postgresql" (value None) sums the local
    PostgreSQL server's processes."""
    out = {
        name: sum(cpu_ticks(p) for p in postgres_pids()) if pid is None else cpu_ticks(pid)
        for name, pid in pids.items()
    }
    out["all"] = busy_ticks()
    out["steal"] = steal_ticks()
    return out


def cpu_percent(before: dict, after: dict, seconds: float) -> dict:
    """% of one core per process, plus what the rest of the machine (not this benchmark)
    used: another job on the box would skew every number."""
    if seconds <= 0:
        return {}
    pct = {n: max(0.0, 100.0 * (after[n] - before[n]) / CLK_TCK / seconds) for n in before}
    total = pct.pop("all")
    steal = pct.pop("steal")
    pct["rest of the machine"] = max(0.0, total - steal - sum(pct.values()))
    pct["stolen by the hypervisor"] = steal
    return pct


async def probe_phase(bench: Bench, pool: HTTPPool, port: int, rate: float, duration: float):
    """Pages and POSTs while all stream slots are held, each kind open-loop at `rate`/s."""
    lat: dict[str, list[int]] = {
        "GET /conversations": [],
        "GET /conversations/<id>": [],
        "POST send": [],
    }
    bad: dict[str, int] = {k: 0 for k in lat}
    samples: list[str] = []
    rng = random.Random(7)
    seq_base = 10_000_000

    async def timed(kind: str, raw: bytes, t: float, ok: int, key: int):
        try:
            status, body = await pool.request(raw, key)
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            status, body = 0, repr(e).encode()
        if status != ok:
            bad[kind] += 1
            if len(samples) < 5:
                samples.append(f"{kind}: {status} {body[:200]!r}")
        lat[kind].append(time.time_ns() - int(t * 1e9))

    async def page_list(k, t):
        i = rng.randrange(bench.users)
        await timed(
            "GET /conversations",
            get_request("/conversations", bench.cookies[i], port=port),
            t,
            200,
            i,
        )

    async def page_show(k, t):
        i = rng.randrange(bench.users)
        cid = i % bench.args.conversations + 1
        raw = get_request(f"/conversations/{cid}", bench.cookies[i], port=port)
        await timed("GET /conversations/<id>", raw, t, 200, i)

    async def send(k, t):
        i = rng.randrange(bench.users)
        cid = i % bench.args.conversations + 1
        body = f"b:{int(t * 1e9)}:{seq_base + k} probe"
        raw = post_message_request(cid, bench.cookies[i], bench.csrf[i], body, port)
        await timed("POST send", raw, t, 201, i)

    start = time.time() + 0.1
    await asyncio.gather(
        open_loop(rate, duration, page_list, start),
        open_loop(rate, duration, page_show, start + 0.5 / rate / 3),
        open_loop(rate, duration, send, start + 1.0 / rate / 3),
    )
    for line in samples:
        print(f"[probe] failed: {line}", flush=True)
    return {k: summarize_ms(v) | {"errors": bad[k]} for k, v in lat.items()}


async def fanout_phase(bench: Bench, pool: HTTPPool, port: int):
    args = bench.args
    c = args.conversations
    sent: dict[int, tuple[int, int, int]] = {}  # seq -> (cid, send_ns, status)
    post_lat: list[int] = []
    errors: list[str] = []

    async def fire(k: int, t: float):
        cid = k % c + 1
        members = bench.members(cid)
        sender = members[(k // c) % len(members)]
        send_ns = int(t * 1e9)
        raw = post_message_request(
            cid, bench.cookies[sender], bench.csrf[sender], f"b:{send_ns}:{k} hello", port
        )
        try:
            status, body = await pool.request(raw, sender)
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            status, body = 0, repr(e).encode()
        post_lat.append(time.time_ns() - send_ns)
        if status != 201 and len(errors) < 5:
            errors.append(f"{status} {body[:200]!r}")
        sent[k] = (cid, send_ns, status)

    gen = await open_loop(args.rate, args.duration, fire)
    return sent, post_lat, errors, gen


def ask(conn, cmd, arg=None, timeout=600):
    conn.send((cmd, arg))
    if not conn.poll(timeout):
        raise SystemExit(f"stream process did not answer {cmd!r}")
    return conn.recv()


async def drain(conn, expected_hint: int, max_wait: float) -> float:
    t0 = time.time()
    last, still = -1, 0
    while time.time() - t0 < max_wait:
        await asyncio.sleep(0.5)
        n = ask(conn, "count")["delivered"]
        if n >= expected_hint:
            break
        still = still + 1 if n == last else 0
        if still >= 6:  # nothing new for 3 s
            break
        last = n
    return time.time() - t0


def wait_quiet(max_wait: float, threshold: float = 25.0, window: float = 10.0) -> float:
    """Waits (up to max_wait s) until the rest of the machine has used less than `threshold` %
    of one core for `window` s: another job on this 2-core box skews every number. Returns
    that background load, as measured in the last window."""
    deadline = time.time() + max_wait
    while True:
        a = busy_ticks()
        time.sleep(window)
        pct = 100.0 * (busy_ticks() - a) / CLK_TCK / window
        if pct < threshold or time.time() >= deadline:
            return pct
        print(f"[wait] the machine is busy ({pct:.0f}% of a core); waiting", flush=True)


def run(args) -> dict:
    nofile = raise_nofile()
    if args.wait_quiet:
        print(f"[wait] background load {wait_quiet(args.wait_quiet):.0f}% of a core", flush=True)
    bench = Bench(args)
    result: dict = {"nofile": nofile, "speed_before": python_speed()}
    stream_proc = None
    try:
        print(f"[setup] temp dir {bench.tmp}", flush=True)
        bench.start_redis()
        bench.setup_data()
        print(
            f"[setup] {bench.users:,} users, {args.conversations:,} conversations of "
            f"{bench.group_size}, cookies signed ({bench.dialect}) "
            f"in {bench.info['setup_s']:.1f} s",
            flush=True,
        )
        bench.start_gunicorn()
        port = bench.port
        print(f"[setup] gunicorn on :{port}, workers {bench.workers}", flush=True)

        # The stream reader is forked before this process opens any connection of its own.
        parent, child = mp.get_context("fork").Pipe()
        stream_proc = mp.get_context("fork").Process(
            target=stream_process,
            args=(child, port, bench.cookies, args.open_concurrency, args.format == "json"),
            daemon=True,
        )
        stream_proc.start()

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        pool = HTTPPool(HOST, port, limit=args.max_inflight)
        loop.run_until_complete(warm_up(bench, pool, port))
        rss0 = bench.worker_rss_kb()
        print(f"[memory] workers idle, 0 streams: {rss0} KB", flush=True)

        pids = {f"worker {i + 1}": pid for i, pid in enumerate(bench.workers)}
        pids |= {
            "gunicorn master": bench.gunicorn.pid,
            "redis": bench.redis_proc.pid,
            "streams (client)": stream_proc.pid,
            "sender (client)": os.getpid(),
        }
        if bench.dialect == "postgresql" and any(
            h in bench.base_db_url for h in (HOST, "localhost")
        ):
            pids["postgresql"] = None

        t_open = time.time()
        cpu_a = pids_cpu(pids)
        opened = ask(parent, "open", list(range(args.streams)))
        open_s = time.time() - t_open
        cpu_open = cpu_percent(cpu_a, pids_cpu(pids), open_s)
        opened_at = opened.pop("opened_at")
        print(
            f"[streams] {opened['opened']:,}/{args.streams:,} open in {opened['seconds']:.1f} s "
            f"({opened['n_errors']} errors {opened['errors']}); open latency p50 "
            f"{fmt(opened['open_ms'].get('p50'))} ms p99 {fmt(opened['open_ms'].get('p99'))} ms",
            flush=True,
        )
        time.sleep(args.settle)
        rss1 = bench.worker_rss_kb()
        redis_clients = bench.redis.info("clients")["connected_clients"] - 1
        per_worker_streams = connections_per_worker(bench.workers, port)
        delta = sum(rss1) - sum(rss0)
        kb_per_stream = delta / max(1, opened["opened"])
        print(
            f"[memory] with {opened['opened']:,} idle streams: {rss1} KB; streams per worker "
            f"{per_worker_streams}; {kb_per_stream:.1f} KB per stream; "
            f"{redis_clients} Redis connections from the server",
            flush=True,
        )

        # Idle cost of the open streams (heartbeats, presence refreshes): one heartbeat period.
        cpu_a = pids_cpu(pids)
        t = time.time()
        time.sleep(args.idle_window)
        cpu_idle = cpu_percent(cpu_a, pids_cpu(pids), time.time() - t)
        print(
            "[idle] CPU % with all streams idle: "
            + ", ".join(f"{n} {v:.0f}" for n, v in cpu_idle.items()),
            flush=True,
        )

        probes = None
        if args.probe_duration > 0:
            t = time.time()
            cpu_a = pids_cpu(pids)
            probes = loop.run_until_complete(
                probe_phase(bench, pool, port, args.probe_rate, args.probe_duration)
            )
            cpu_probe = cpu_percent(cpu_a, pids_cpu(pids), time.time() - t)
            for k, v in probes.items():
                print(
                    f"[probe] {k}: p50 {fmt(v.get('p50'))} ms p99 {fmt(v.get('p99'))} ms "
                    f"max {fmt(v.get('max'))} ms errors {v['errors']}",
                    flush=True,
                )
            time.sleep(2)
            probe_delivered = ask(parent, "count")["delivered"]
        else:
            cpu_probe = {}
            probe_delivered = ask(parent, "count")["delivered"]

        print(
            f"[fan-out] {args.rate:g} msg/s for {args.duration:g} s to {args.conversations:,} "
            f"conversations ...",
            flush=True,
        )
        t = time.time()
        cpu_a = pids_cpu(pids)
        rss_peak = [0] * len(bench.workers)

        async def fan_out_with_sampling():
            task = asyncio.create_task(fanout_phase(bench, pool, port))
            while not task.done():
                rss_peak[:] = [
                    max(a, b) for a, b in zip(rss_peak, bench.worker_rss_kb(), strict=True)
                ]
                await asyncio.wait({task}, timeout=1.0)
            return task.result()

        sent, post_lat, post_errors, gen = loop.run_until_complete(fan_out_with_sampling())
        fan_s = time.time() - t
        cpu_fan = cpu_percent(cpu_a, pids_cpu(pids), fan_s)
        n_ok = sum(1 for v in sent.values() if v[2] == 201)
        expected_hint = probe_delivered + n_ok * bench.group_size
        drained = loop.run_until_complete(drain(parent, expected_hint, args.drain))

        # Presence: every user has an open stream, so every user should be online.
        now = time.time()
        pipe = bench.redis.pipeline()
        for uid in range(1, bench.users + 1):
            pipe.zcount(f"chipper:online:{uid}", now, "+inf")
        online = sum(1 for n in pipe.execute() if n)

        data = ask(parent, "close")
        stream_proc.join(timeout=10)
        rss_end = bench.worker_rss_kb()
        loop.close()

        # ---- analysis
        idx = array("i")
        idx.frombytes(data["idx"])
        seq = array("q")
        seq.frombytes(data["seq"])
        lat = array("q")
        lat.frombytes(data["lat"])
        lost = {i: t_ns for i, t_ns in data["lost"]}
        fan_lat, seen, dups = [], set(), 0
        dumped: list[tuple[int, int]] = []
        for i, s, ns in zip(idx, seq, lat, strict=True):
            if s not in sent:
                continue
            key = (s, i)
            if key in seen:
                dups += 1
                continue
            seen.add(key)
            fan_lat.append(ns)
            if args.dump:
                dumped.append((sent[s][1], ns))
        if args.dump:
            # (scheduled send time in ns, send->delivery in ns) of every delivery, for
            # finding when the slow ones happen.
            Path(args.dump).write_text(json.dumps(sorted(dumped)))
        expected = 0
        for _s, (cid, send_ns, status) in sent.items():
            if status != 201:
                continue
            for m in bench.members(cid):
                t_open_ns = opened_at.get(m)
                if t_open_ns is None or t_open_ns > send_ns:
                    continue
                if m in lost and lost[m] < send_ns:
                    continue
                expected += 1
        log_text = (bench.tmp / "gunicorn.log").read_text(errors="replace")
        result.update(
            streams=args.streams,
            opened=opened,
            open_s=open_s,
            per_worker_streams=per_worker_streams,
            rss0=rss0,
            rss1=rss1,
            rss_peak=rss_peak,
            rss_end=rss_end,
            redis_clients=redis_clients,
            cpu_ms_per_msg=(
                sum(cpu_fan.get(f"worker {i + 1}", 0) for i in range(len(bench.workers)))
                / 100
                * fan_s
                / max(1, len(sent))
                * 1e3
            ),
            kb_per_stream=kb_per_stream,
            probes=probes,
            sent=len(sent),
            sent_ok=n_ok,
            post_errors=post_errors,
            expected=expected,
            delivered=len(fan_lat),
            duplicates=dups,
            latency=summarize_ms(fan_lat),
            post_latency=summarize_ms(post_lat),
            generator=gen,
            fan_seconds=fan_s,
            drained_s=drained,
            lost_streams=len(lost),
            online=online,
            cpu_open=cpu_open,
            cpu_idle=cpu_idle,
            cpu_probe=cpu_probe,
            cpu_fan=cpu_fan,
            connections_opened=pool.opened,
            tracebacks=log_text.count("Traceback"),
            publish_failures=log_text.count("could not publish"),
            speed_after=python_speed(),
            log_tail=log_text.strip().splitlines()[-5:],
            dialect=bench.dialect,
            group_size=bench.group_size,
        )
        return result
    finally:
        if stream_proc is not None and stream_proc.is_alive():
            stream_proc.kill()
        bench.stop()
        if args.keep:
            print(f"[teardown] kept {bench.tmp}")
        else:
            shutil.rmtree(bench.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Report


def verdicts(args, r) -> list[tuple[str, str, bool]]:
    targets = SCENARIOS.get(args.scenario, {}).get("targets", {}) if args.scenario else {}
    out = [
        (
            "every message delivered",
            f"{r['delivered']:,} / {r['expected']:,} (+{r['duplicates']} dup)",
            r["delivered"] == r["expected"] and r["sent_ok"] == r["sent"],
        )
    ]
    if "p99_ms" in targets:
        p99 = r["latency"].get("p99", float("inf"))
        out.append(
            (f"delivery p99 < {targets['p99_ms']} ms", f"{fmt(p99)} ms", p99 < targets["p99_ms"])
        )
    if "kb_per_stream" in targets:
        k = r["kb_per_stream"]
        out.append(
            (
                f"< {targets['kb_per_stream']} KB per idle stream",
                f"{k:.1f} KB",
                k < targets["kb_per_stream"],
            )
        )
    if "probe_p99_ms" in targets and r["probes"]:
        worst = max(v.get("p99", float("inf")) for v in r["probes"].values())
        out.append(
            (
                f"pages and POSTs p99 < {targets['probe_p99_ms']} ms (all slots held)",
                f"worst {fmt(worst)} ms",
                worst < targets["probe_p99_ms"],
            )
        )
    return out


def _ms(d: dict, *keys: str) -> str:
    return " / ".join(fmt(d.get(k)) for k in keys) + " ms"


def _mb(values) -> str:
    return " + ".join(f"{x / 1024:.1f}" for x in values) + " MB"


def report(args, r) -> tuple[str, str]:
    """The results table and the targets table, in Markdown."""
    o = r["opened"]
    rows = [
        (
            "streams open / asked",
            f"{o['opened']:,} / {r['streams']:,} (per worker: {r['per_worker_streams']})",
        ),
        (
            "opening them",
            f"{o['seconds']:.1f} s for all, {args.open_concurrency} at a time; each "
            f"(connect to `: connected`) p50 / p99 {_ms(o['open_ms'], 'p50', 'p99')}",
        ),
        (
            "this machine's Python speed: 10 million additions, before / after the run",
            f"{r['speed_before']:.2f} / {r['speed_after']:.2f} s",
        ),
        ("conversations x members", f"{args.conversations:,} x {r['group_size']}"),
        (
            "messages sent (201) / scheduled",
            f"{r['sent_ok']:,} / {r['sent']:,} at {args.rate:g}/s over {args.duration:g} s",
        ),
        (
            "deliveries delivered / expected",
            f"{r['delivered']:,} / {r['expected']:,} (duplicates {r['duplicates']}, "
            f"streams lost {r['lost_streams']})",
        ),
        (
            "send->delivery p50 / p90 / p99 / p99.9 / max",
            "**" + _ms(r["latency"], "p50", "p90", "p99", "p999", "max") + "**",
        ),
        (
            "POST send during fan-out p50 / p99 / max",
            _ms(r["post_latency"], "p50", "p99", "max"),
        ),
        (
            "HTTP connections the load generator opened (warm-up, probes, fan-out)",
            f"{r['connections_opened']:,} (fan-out sends: {r['sent']:,})",
        ),
        (
            "server CPU per message (both workers, fan-out included)",
            f"{r['cpu_ms_per_msg']:.2f} ms",
        ),
        (
            "load generator lateness p99 / max",
            _ms(r["generator"], "lag_p99_ms", "lag_max_ms"),
        ),
        ("worker RSS, 0 streams", _mb(r["rss0"])),
        ("worker RSS, all streams idle", _mb(r["rss1"])),
        ("server memory per idle stream", f"**{r['kb_per_stream']:.1f} KB**"),
        ("Redis connections held by the workers, streams idle", f"{r['redis_clients']:,}"),
        ("worker RSS peak during fan-out / at end", f"{_mb(r['rss_peak'])} / {_mb(r['rss_end'])}"),
    ]
    for kind, v in (r["probes"] or {}).items():
        rows.append(
            (
                f"{kind}, all streams held ({args.probe_rate:g}/s for {args.probe_duration:g} s) "
                "p50 / p99 / max",
                f"**{_ms(v, 'p50', 'p99', 'max')}** ({v['errors']} errors)",
            )
        )
    for label, key in (
        ("opening streams", "cpu_open"),
        ("all streams idle", "cpu_idle"),
        ("probes", "cpu_probe"),
        ("fan-out", "cpu_fan"),
    ):
        if r[key]:
            rows.append(
                (
                    f"CPU % of one core while {label}",
                    ", ".join(f"{n} {v:.0f}" for n, v in r[key].items()),
                )
            )
    rows += [
        (
            "users Redis shows online at the end",
            f"{r['online']:,} of {r['streams']:,} (every one has an open stream)",
        ),
        (
            "tracebacks / 'could not publish' in the gunicorn log",
            f"{r['tracebacks']} / {r['publish_failures']}",
        ),
    ]
    table = "\n".join(["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])
    noise = max(
        r[k].get("rest of the machine", 0) + r[k].get("stolen by the hypervisor", 0)
        for k in ("cpu_probe", "cpu_fan")
        if r[k]
    )
    if noise > NOISE_LIMIT:
        table += (
            f"\n\n**Warning:** the rest of the machine (or other machines on the same host) "
            f"used up to {noise:.0f} % of a core "
            "during the measurements: this run's latencies are not representative."
        )
    vtable = "\n".join(
        ["| target | measured | met |", "|---|---|---|"]
        + [f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in verdicts(args, r)]
    )
    return table, vtable


def machine() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "chipper"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    commit = commit or "? (not a git checkout)"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?"
            )
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}; "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"commit {commit}{' (chipper/ modified)' if dirty else ''}"
    )


def write_results(path: Path, key: str, title: str, body: str):
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    section = f"{start}\n## {title}\n\n{body.strip()}\n{end}\n"
    if path.exists():
        text = path.read_text()
    else:
        text = (
            "# Fan-out benchmark results\n\n"
            "Written by `bench/fanout.py` (see its docstring for the method). Each section is "
            "rewritten when its scenario is run again.\n\n"
        )
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + section.rstrip("\n") + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--scenario", choices=sorted(SCENARIOS), help="preset sizes and targets from issue 3"
    )
    p.add_argument("--streams", type=int, help="concurrent SSE streams (one user each)")
    p.add_argument("--conversations", type=int, help="group conversations (streams split evenly)")
    p.add_argument("--rate", type=float, help="messages per second, open loop")
    p.add_argument("--duration", type=float, help="seconds of fan-out")
    p.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL URL: a throwaway schema is created in it (default: SQLite in a temp dir)",
    )
    p.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY (default 2)")
    p.add_argument(
        "--format",
        choices=["html", "json"],
        default="html",
        help="stream format (html: what pages use)",
    )
    p.add_argument(
        "--probe-rate",
        type=float,
        default=20,
        help="per-second rate of each probe kind (default 20)",
    )
    p.add_argument(
        "--probe-duration",
        type=float,
        default=20,
        help="seconds of probes with all streams held; 0 skips (default 20)",
    )
    p.add_argument(
        "--open-concurrency",
        type=int,
        default=100,
        help="streams being opened at once (default 100)",
    )
    p.add_argument(
        "--max-inflight",
        type=int,
        default=1000,
        help="cap on concurrent sender connections (default 1000)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=3,
        help="seconds between opening streams and measuring memory",
    )
    p.add_argument(
        "--idle-window",
        type=float,
        default=15,
        help="seconds of CPU measurement with all streams idle (default 15: one heartbeat)",
    )
    p.add_argument(
        "--drain", type=float, default=30, help="max seconds to wait for late deliveries"
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        default=0,
        help="STREAM_HEARTBEAT for the server (default: the app's)",
    )
    p.add_argument("--name", help="section key in RESULTS.md (default: from the scenario)")
    p.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    p.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    p.add_argument(
        "--dump", metavar="FILE", help="write every delivery's (send ns, latency ns) as JSON"
    )
    p.add_argument("--note", default="", help="a line added to the RESULTS.md section")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="first wait up to S s for the rest of the machine to go quiet",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the temp dir (gunicorn and redis logs)"
    )
    args = p.parse_args(argv)
    preset = SCENARIOS.get(args.scenario, SCENARIOS["a"])
    for k in ("streams", "conversations", "rate", "duration"):
        if getattr(args, k) is None:
            setattr(args, k, preset[k])
    if args.streams % args.conversations:
        p.error("--streams must be a multiple of --conversations")
    return args


def main(argv=None):
    args = parse_args(argv)
    # A plain `kill` still tears down gunicorn, Redis and the PostgreSQL schema.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = (
        "cd "
        + str(ROOT)
        + " && .venv/bin/python "
        + " ".join(
            [
                str(Path(sys.argv[0]).resolve().relative_to(ROOT))
                if Path(sys.argv[0]).resolve().is_relative_to(ROOT)
                else sys.argv[0]
            ]
            + sys.argv[1:]
        )
    )
    r = run(args)
    table, vtable = report(args, r)
    print()
    print(table)
    print()
    print(vtable)
    if r["post_errors"]:
        print("\nfailed sends (first 5):\n  " + "\n  ".join(r["post_errors"]))
    if r["tracebacks"]:
        print("\ngunicorn log tail:\n  " + "\n  ".join(r["log_tail"]))
    if args.no_write:
        return
    db = "PostgreSQL" if r["dialect"] == "postgresql" else "SQLite"
    if args.scenario and (args.streams, args.conversations, args.rate) == tuple(
        SCENARIOS[args.scenario][k] for k in ("streams", "conversations", "rate")
    ):
        title = f"{SCENARIOS[args.scenario]['title']}, {args.duration:g} s, {db}"
        key = args.name or f"{args.scenario}-{r['dialect']}"
    else:
        title = (
            f"{args.streams:,} streams over {args.conversations:,} conversations, "
            f"{args.rate:g} messages/s, {args.duration:g} s, {db}"
        )
        key = args.name or f"{args.streams}s-{args.conversations}c-{args.rate:g}r-{r['dialect']}"
    if args.name:
        title += f" [{args.name}]"
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()[2][2:]
    body = (
        f"Machine: {machine()}.  \n"
        f"Command: `{command}`  \n"
        f"Server: `gunicorn -c gunicorn.conf.py wsgi:app`, {args.workers} gevent workers, "
        f"WORKER_CONNECTIONS={args.streams + 1000}, Redis {redis_version}, "
        f"stream format {args.format}.\n\n"
        + (f"{args.note}\n\n" if args.note else "")
        + vtable
        + "\n\n"
        + table
        + "\n"
    )
    write_results(Path(args.results), key, title, body)
    print(f"\nwrote {args.results} (section {key})")


if __name__ == "__main__":
    main()
