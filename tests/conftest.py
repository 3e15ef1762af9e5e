"""Fixtures: an app on a real database (SQLite by default, PostgreSQL with TEST_DATABASE_URL),
a test client that sends the CSRF token like our pages do, and helpers to make users and chats.
"""

import json
import os
import re
import uuid
from collections.abc import Iterator

import jinja2
import pytest
import sqlalchemy as sa
from flask import request
from flask import session as flask_session
from flask.testing import FlaskClient
from flask_login import login_user
from flask_sqlalchemy import SQLAlchemy
from werkzeug.datastructures import Headers
from werkzeug.routing import Rule

from chipper import create_app
from chipper.extensions import db
from chipper.models import User
from chipper.services import conversations, messages, search, sessions
from chipper.services.accounts import register_user
from chipper.services.conversations import Membership
from tests.realtime_support import InProcessServer, RedisServer, Server, Visitor


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fails a test marked `xdist_group` that pytest-xdist did not group: with pytest 9.2 it
    silently cannot (pytest-dev/pytest-xdist#1386), and the browser tests would then start a
    Chromium on every worker and starve the others."""
    config = item.config
    if not hasattr(config, "workerinput") or not config.getvalue("loadgroup"):
        return
    if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
        pytest.fail(
            "pytest-xdist lost this test's xdist_group: install a pytest that setup.cfg allows",
            pytrace=False,
        )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked `long` first: pytest-xdist hands out single tests in this order (after
    its groups of several), and a long one handed out last made the run longer by its own
    length (a 7 s test began 50 s into a 57 s run here)."""
    items.sort(key=lambda item: not item.get_closest_marker("long"))


PASSWORD = "correct horse battery"
CHEAP_PASSWORD_HASH = {
    "PASSWORD_HASH_TIME": 1,
    "PASSWORD_HASH_MEMORY_KIB": 8,
    "PASSWORD_HASH_PARALLELISM": 1,
}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class Client(FlaskClient):
    """Sends the session's CSRF token in the X-CSRFToken header, as htmx does for our pages.

    Pass csrf=False to send a request without it.
    """

    def open(self, *args, csrf: bool = True, **kwargs):
        method = kwargs.get("method") or "GET"
        if csrf and method.upper() in UNSAFE:
            headers = Headers(kwargs.pop("headers", None) or {})
            if "X-CSRFToken" not in headers:
                headers["X-CSRFToken"] = self.csrf_token()
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)

    def csrf_token(self) -> str:
        """The token a page would carry now. Asked of the server once per session cookie (it
        is tied to the session): asking before every unsafe request cost the suite an extra
        GET each time, about a tenth of an in-process test's CPU."""
        name = self.application.config["SESSION_COOKIE_NAME"]
        cookie = self.get_cookie(name)
        key = cookie.value if cookie is not None else None
        cached = getattr(self, "_csrf", None)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        response = super().open("/login", headers={"Accept": "application/json"})
        token = response.get_json()["csrf_token"]
        cookie = self.get_cookie(name)
        self._csrf = (cookie.value if cookie is not None else None, token)
        return token

    def sign_in(self, user_id: int) -> None:
        """What POST /login does for this user, done in a request context of its own; the
        session it leaves is then written into this client's cookie."""
        with self.application.test_request_context(headers={"User-Agent": "pytest"}):
            user = sessions.start(db.session.get(User, user_id), request.user_agent.string)
            login_user(user)
            signed_in = dict(flask_session)
        with self.session_transaction() as current:
            current.update(signed_in)

    def csrf_from_page(self, path: str) -> str:
        """The token as a no-JS browser would take it: from the hidden field of a page's form."""
        html = self.get(path).get_data(as_text=True)
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    def submit(self, page: str, action: str, data: dict):
        """What a browser without JavaScript does: open `page`, post its form to `action`."""
        token = self.csrf_from_page(page)
        return self.post(action, data={**data, "csrf_token": token}, csrf=False)


# pytest-xdist's worker ("gw0", "gw1", ...); "master" when the suite runs in one process.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "master")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> Iterator[str]:
    """The session's database: a SQLite file of this worker's own (its temporary folder), or
    on PostgreSQL a schema of its own (`test_gw0`, ...) that every connection finds first
    through its `search_path`, set in the URL so the gunicorn servers the tests start use it
    too."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        yield "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.sqlite3")
        return
    if sa.make_url(base).get_backend_name() != "postgresql":
        yield base
        return
    schema = f"test_{WORKER}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(scope="session")
def _schema(database_url, tmp_path_factory):
    _one_engine_for_the_test_database(database_url)
    app = create_app(_test_config(database_url, tmp_path_factory.mktemp("instance")))
    # Contexts are opened only around the work: one left open for the session would become
    # current_app for every test (and for `flask` commands run through the CLI runner).
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.engine.dispose()
    yield
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def _test_config(database_url: str, instance) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "UPLOAD_FOLDER": str(instance / "uploads"),
        # Push notifications stay off unless a test turns them on (through app_config), even
        # when the developer made a key for their own instance folder.
        "VAPID_PRIVATE_KEY": "",
        # A cheap hash for the many users tests make: the real one costs ~40 ms per user and
        # login. tests/test_auth.py checks the real defaults.
        **CHEAP_PASSWORD_HASH,
        # Tests make many requests quickly; tests/test_limits.py turns the limits on.
        "RATELIMIT_ENABLED": False,
        # Most tests make several accounts; tests of who may join set it themselves.
        "REGISTRATION": "open",
    }


def _empty_tables() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(sa.text(f"DELETE FROM {name}"))
            conn.execute(sa.text(f"DELETE FROM {search.TABLE}"))  # not a model (CASCADE above)


@pytest.fixture
def app_config() -> dict:
    """Settings a test module adds to the test app's (override this fixture)."""
    return {}


class _CompiledOnce(jinja2.BytecodeCache):
    """Every test makes a new app, and each app's Jinja environment would compile the same
    templates again (about a tenth of the suite's CPU): they are compiled once per process
    and kept here (a template whose source changed is compiled again: Jinja checks)."""

    def __init__(self):
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if (code := self.compiled.get(bucket.key)) is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = _CompiledOnce()


def _url_builders_compiled_once() -> None:
    """Each new app also compiles a URL builder for every route (Werkzeug writes and compiles
    a small function per rule: about a fifth of an in-process test's CPU). The function
    depends only on the rule's text, its defaults and whether unknown arguments are appended
    (it takes the rule as its first argument), so one compiled per process serves every app."""
    compile_builder = Rule._compile_builder
    compiled: dict[tuple, object] = {}

    def compiled_once(rule: Rule, append_unknown: bool = True):
        defaults = repr(sorted((rule.defaults or {}).items()))
        key = (rule.rule, tuple(rule._trace), defaults, append_unknown)
        if (builder := compiled.get(key)) is None:
            builder = compiled[key] = compile_builder(rule, append_unknown)
        return builder

    Rule._compile_builder = compiled_once


def _rules_parsed_once() -> None:
    """Before the builders, every new app parses each rule's text into the parts its matcher is
    made of (about half of making an app). The parts depend on the rule's text, its host or
    subdomain and the map's converters; the converters themselves are made again for each
    map (they hold it), so each app still gets its own."""
    compile_rule = Rule.compile
    parsed: dict[tuple, tuple] = {}

    def compiled_once(rule: Rule) -> None:
        m = rule.map
        domain = (rule.host if m.host_matching else rule.subdomain) or ""
        key = (rule.rule, domain, rule.merge_slashes, tuple(sorted(m.converters.items())))
        if (known := parsed.get(key)) is None:
            made: list[tuple] = []
            get_converter = rule.get_converter

            def recorded(variable, name, args, kwargs):
                made.append((variable, name, args, dict(kwargs)))
                return get_converter(variable, name, args, kwargs)

            rule.get_converter = recorded
            try:
                compile_rule(rule)
            finally:
                del rule.get_converter
            parsed[key] = (list(rule._parts), list(rule._trace), made)
            return
        parts, trace, made = known
        rule._parts, rule._trace = list(parts), list(trace)
        rule._converters = {}
        for variable, name, args, kwargs in made:
            rule._converters[variable] = rule.get_converter(variable, name, args, kwargs)
            rule.arguments.add(variable)
        rule._build = rule._compile_builder(False).__get__(rule, None)
        rule._build_unknown = rule._compile_builder(True).__get__(rule, None)

    Rule.compile = compiled_once


_url_builders_compiled_once()
_rules_parsed_once()


def _one_engine_for_the_test_database(url: str) -> None:
    """Every test's app would make its own engine for the session's database, and SQLAlchemy
    caches compiled statements per engine: each test compiled every query it ran again
    (about a tenth of an in-process test's CPU). The apps made on that database share one
    engine per process; the app fixture still disposes of its connections after each test.
    Apps on another database (a migration test's fresh file) get engines of their own."""
    make_engine = SQLAlchemy._make_engine
    shared: dict[str, sa.Engine] = {}
    test_database = sa.make_url(url)

    def shared_engine(self, bind_key, options, app):
        if sa.make_url(options["url"]) != test_database:
            return make_engine(self, bind_key, options, app)
        key = repr(sorted(options.items(), key=lambda item: item[0]))
        if (engine := shared.get(key)) is None:
            engine = shared[key] = make_engine(self, bind_key, options, app)
        return engine

    SQLAlchemy._make_engine = shared_engine


@pytest.fixture
def app(_schema, database_url, tmp_path, app_config):
    app = create_app({**_test_config(database_url, tmp_path), **app_config})
    app.test_client_class = Client
    app.jinja_env.bytecode_cache = COMPILED_TEMPLATES
    with app.app_context():
        _empty_tables()
    yield app
    app.extensions["chipper.jobs"].close()
    # A push job still running would otherwise write into the next test's tables.
    app.extensions["chipper.push"].sender.close()
    with app.app_context():
        db.session.remove()


@pytest.fixture
def client(app) -> Client:
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Factory:
    """Makes users, conversations and messages through the service verbs."""

    def __init__(self, app):
        self.app = app
        self.count = 0

    def user(self, name: str | None = None) -> int:
        self.count += 1
        name = name or f"User {self.count}"
        email = f"{name.lower().replace(' ', '.')}.{self.count}@example.com"
        with self.app.app_context():
            return register_user(name, email, PASSWORD).id

    def email(self, user_id: int) -> str:
        with self.app.app_context():
            return db.session.get(User, user_id).email

    def private(self, a: int, b: int) -> int:
        with self.app.app_context():
            conversation, _ = conversations.start_private(db.session.get(User, a), b)
            return conversation.id

    def group(self, creator: int, others: list[int], name: str = "Team") -> int:
        with self.app.app_context():
            user = db.session.get(User, creator)
            return conversations.create_group(user, name, others).id

    def message(self, user_id: int, conversation_id: int, body: str = "hello") -> int:
        with self.app.app_context():
            user = db.session.get(User, user_id)
            conversation = conversations.conversation_for(user, conversation_id)
            return messages.send_message(user, Membership.of(conversation), body).id


@pytest.fixture
def make(app) -> Factory:
    return Factory(app)


class AuthActions:
    def __init__(self, client: Client, make: Factory):
        self.client = client
        self.make = make

    def login(self, user_id: int) -> None:
        """Signs the client in as a successful POST /login does (a sign-in of the server's
        own, its token in the session cookie), without the form: a login through HTTP cost
        two requests, the most of the setup of many tests. The login itself is tested
        through its form and API (tests/test_auth.py, tests/test_sessions.py)."""
        self.client.sign_in(user_id)

    def logout(self):
        return self.client.post("/logout")


@pytest.fixture
def auth(client, make) -> AuthActions:
    return AuthActions(client, make)


JSON = {"Accept": "application/json"}
HTMX = {"HX-Request": "true"}


def as_json(response) -> dict:
    return json.loads(response.get_data(as_text=True))


def text(response) -> str:
    return response.get_data(as_text=True)


def refused_page(client, response, conversation_id: int) -> str:
    """A send refused without JavaScript goes back to the conversation (303, so a reload
    cannot post it again): the HTML of that page, which shows the reason and the text."""
    assert response.status_code == 303, response.status_code
    location = f"/conversations/{conversation_id}?refused=1#composer"
    assert response.headers["Location"] == location
    return text(client.get(location))


def without_tokens(html: str) -> str:
    """The page minus what differs from one response to the next: its CSRF tokens, which
    carry a timestamp, and the server's time (`data-now`)."""
    return re.sub(
        r'(csrf-token" content="|csrf_token" value="|X-CSRFToken": "|data-now=")[^"]+', r"\1", html
    )


class Sql:
    """Reads (and, for setting up a scene, writes) the database in the app's context.

    Returns plain values, never ORM objects, so results stay usable after the context ends.
    """

    def __init__(self, app):
        self.app = app

    def scalar(self, stmt):
        with self.app.app_context():
            return db.session.scalar(stmt)

    def scalars(self, stmt) -> list:
        with self.app.app_context():
            return list(db.session.scalars(stmt))

    def rows(self, stmt) -> list[tuple]:
        with self.app.app_context():
            return [tuple(row) for row in db.session.execute(stmt)]

    def write(self, stmt) -> None:
        with self.app.app_context():
            db.session.execute(stmt)
            db.session.commit()


@pytest.fixture
def sql(app) -> Sql:
    return Sql(app)


@pytest.fixture
def login_client(app, make):
    """Another browser: a new client signed in as the given user."""

    def login(user_id: int) -> Client:
        other = app.test_client()
        AuthActions(other, make).login(user_id)
        return other

    return login


@pytest.fixture
def ada(make, auth) -> int:
    """A user called Ada, signed in on `client`."""
    user = make.user("Ada")
    auth.login(user)
    return user


@pytest.fixture
def bob(make) -> int:
    return make.user("Bob")


@pytest.fixture
def cara(make) -> int:
    return make.user("Cara")


# Live servers: gunicorn the production way, a throwaway Redis, real SSE clients


@pytest.fixture(scope="session")
def redis_control(tmp_path_factory) -> Iterator[RedisServer]:
    """A throwaway redis-server on a free port (never 6379), for the whole session."""
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture(scope="session")
def redis_server(redis_control) -> str:
    """The URL of the session's throwaway Redis."""
    return redis_control.url


@pytest.fixture
def redis_restart(redis_control) -> Iterator[RedisServer]:
    """The session's Redis for a test that stops and starts it (on the same port); running
    again afterwards whatever the test did."""
    yield redis_control
    redis_control.start()


@pytest.fixture(scope="session")
def _stopping_servers() -> Iterator[list[Server]]:
    """Servers told to quit by earlier tests: each takes about half a second to exit, so the
    waiting is left to the end of the session instead of every test's teardown."""
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.stop()


# What Server's environment sets for timed work, for a server on the test's own app.
IN_PROCESS_TIMINGS = {
    "STREAM_HEARTBEAT": 1.0,
    "STREAM_GAP_WAIT": 0.3,
    "PRESENCE_OFFLINE_GRACE": 1.5,
}


@pytest.fixture
def start_server(app, database_url, redis_server, tmp_path, _stopping_servers) -> Iterator:
    """Starts gunicorn with gevent workers on a free port, on the test database; quits it after.

    `start_server()` shares the session's Redis under a key prefix of this test's own, so two
    servers started in one test share events; `start_server(redis=False)` is the embedded
    default, and `flask_run=True` serves with the README's `flask run` instead. Extra keyword
    arguments are environment variables.
    """
    prefix = f"chipper-test-{uuid.uuid4().hex[:12]}"
    servers: list[Server] = []

    def start(
        redis: bool = True, flask_run: bool = False, in_process: bool = False, **env: str
    ) -> Server | InProcessServer:
        if in_process:
            # The test's own app on a thread, with the embedded hub and the servers' timings.
            app.config.update(IN_PROCESS_TIMINGS)
            server = InProcessServer(app)
            servers.append(server)
            return server.start()
        shared = {"REDIS_URL": redis_server, "REDIS_PREFIX": prefix} if redis else {}
        # Extra variables win: a test may give one server another Redis user, say.
        env = {
            "DATABASE_URL": database_url,
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
            **shared,
            **env,
        }
        server = Server(env, tmp_path / f"server-{len(servers) + 1}.log", flask_run)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.quit()
        _stopping_servers.append(server)
        print(f"--- {server.base_url} log (tail) ---\n{server.log()}")


@pytest.fixture
def server(start_server) -> Server:
    """One gunicorn worker sharing events through Redis."""
    return start_server()


@pytest.fixture
def live(start_server) -> InProcessServer:
    """The test's own app served on a thread of the test process, with the embedded hub: for
    tests of what a stream is told, which need neither gunicorn nor Redis."""
    return start_server(in_process=True)


@pytest.fixture
def visit(request, make, start_server) -> Iterator:
    """`visit(user_id, server=None)`: a new browser signed in to the server (default: the
    `live` fixture's if the test asks for it, else the `server` fixture's). Its streams and
    connections are closed after the test, before the servers stop."""
    visitors: list[Visitor] = []

    def sign_in(user_id: int, server: Server | None = None) -> Visitor:
        default = "live" if "live" in request.fixturenames else "server"
        server = server or request.getfixturevalue(default)
        visitor = Visitor(server.base_url, make.email(user_id), PASSWORD)
        visitors.append(visitor)
        return visitor

    yield sign_in
    for visitor in visitors:
        visitor.close()
