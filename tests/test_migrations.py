"""Migrations give exactly the models' schema; the demo seed command."""

import os
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from chipper import create_app
from chipper.cli import modelled
from chipper.extensions import db
from chipper.models import Conversation, Message, User
from chipper.services.search import is_index_table

TABLES = {
    "users",
    "message_reactions",
    "message_mentions",
    "conversations",
    "conversation_participants",
    "messages",
    "calls",
    "call_participants",
    "events",
    "event_recipients",
    "attachments",
    "push_subscriptions",
    "invites",
    "sessions",
    "settings",
    "audit_log",
    "refused_drafts",
}


@pytest.fixture
def empty_database_url(tmp_path):
    """A database nobody has touched: a new SQLite file, or a throwaway PostgreSQL schema."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        yield "sqlite:///" + str(tmp_path / "migrated.sqlite3")
        return
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def fresh_app(empty_database_url, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": empty_database_url,
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        }
    )
    yield app
    # Its first request started the periodic jobs; they would go on sweeping tables that
    # are dropped after the test.
    app.extensions["chipper.jobs"].close()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def flask(app, *args: str):
    """Runs a `flask` command on this app (the CLI runner pushes a context only when none is
    active, so push this app's own)."""
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(args))


def schema_diff(app) -> list:
    """What autogenerate would change (with the app's own filter: the search index is not a
    model)."""
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": modelled})
        return compare_metadata(context, db.metadata)


def table_names(app) -> set[str]:
    """The tables, with the search index's (several on SQLite: FTS5's own) as one."""
    with app.app_context(), db.engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
    return {"message_search" if is_index_table(name) else name for name in names}


def test_upgrade_runs_without_warnings(fresh_app):
    """`flask db upgrade` under the suite's filterwarnings=error, as CI runs it."""
    result = flask(fresh_app, "db", "upgrade")
    assert result.exception is None, repr(result.exception)
    assert result.exit_code == 0, result.output


def test_upgrade_on_an_empty_database_gives_the_models_schema(fresh_app):
    assert table_names(fresh_app) == set()
    result = flask(fresh_app, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert table_names(fresh_app) == TABLES | {"alembic_version", "message_search"}
    assert schema_diff(fresh_app) == []


def test_the_diff_would_notice_drift(fresh_app):
    """Guards the test above: an empty database differs from the models by every table."""
    added = {diff[1].name for diff in schema_diff(fresh_app) if diff[0] == "add_table"}
    assert added == TABLES


def test_downgrade_to_base_removes_every_table(fresh_app):
    assert flask(fresh_app, "db", "upgrade").exit_code == 0
    result = flask(fresh_app, "db", "downgrade", "base")
    assert result.exit_code == 0, result.output
    assert table_names(fresh_app) == {"alembic_version"}


def test_upgrade_from_global_event_ids_keeps_users_and_drops_the_replay_buffer(fresh_app):
    """0003 numbers events per user; stored events were only a replay buffer, so they go."""
    assert flask(fresh_app, "db", "upgrade", "0002").exit_code == 0
    with fresh_app.app_context(), db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, name, email, password, created_at, updated_at) "
                "VALUES (1, 'Ada', 'ada@example.com', 'x', :now, :now)"
            ),
            {"now": "2026-11-01 10:00:00"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO events (id, kind, payload, created_at) "
                "VALUES (7, 'read', '{}', '2026-11-01 10:00:00')"
            )
        )
        conn.execute(sa.text("INSERT INTO event_recipients (user_id, event_id) VALUES (1, 7)"))
    result = flask(fresh_app, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert schema_diff(fresh_app) == []
    with fresh_app.app_context():
        user = db.session.get(User, 1)
        assert (user.email, user.event_seq) == ("ada@example.com", 0)
        assert db.session.scalar(sa.text("SELECT count(*) FROM events")) == 0
    assert flask(fresh_app, "db", "downgrade", "0002").exit_code == 0


def test_upgrade_names_the_message_of_each_stored_message_event(fresh_app):
    """0019: events recorded before it get their message from their payload, so a later edit
    or deletion restates them too."""
    assert flask(fresh_app, "db", "upgrade", "0018").exit_code == 0
    stored = [
        (1, "message-created", '{"html": "<li>hi</li>", "data": {"id": 41, "body": "hi"}}'),
        (2, "message-updated", '{"html": "", "data": {"id": 41}}'),
        (3, "read", '{"html": "", "data": {}}'),
    ]
    with fresh_app.app_context(), db.engine.begin() as conn:
        for event_id, kind, payload in stored:
            conn.execute(
                sa.text(
                    "INSERT INTO events (id, kind, payload, created_at) "
                    "VALUES (:id, :kind, :payload, '2026-12-01 10:00:00')"
                ),
                {"id": event_id, "kind": kind, "payload": payload},
            )
    assert flask(fresh_app, "db", "upgrade").exit_code == 0
    with fresh_app.app_context():
        named = db.session.execute(sa.text("SELECT id, message_id FROM events ORDER BY id"))
        assert [tuple(row) for row in named] == [(1, 41), (2, 41), (3, None)]
    assert flask(fresh_app, "db", "downgrade", "0018").exit_code == 0


# seed-demo


def counts(app) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(
            db.session.scalar(sa.select(sa.func.count(model.id)))
            for model in (User, Conversation, Message)
        )


def test_seed_demo_prints_how_to_log_in(app):
    result = flask(app, "seed-demo")
    assert result.exit_code == 0, result.output
    assert "Log in with" in result.output
    assert "password: chipper-demo" in result.output
    for email in ("ada@example.com", "grace@example.com", "alan@example.com"):
        assert email in result.output
    assert counts(app) == (4, 2, 4)


def test_seed_demo_users_can_log_in(app, client):
    flask(app, "seed-demo")
    response = client.post(
        "/login", data={"email": "ada@example.com", "password": "chipper-demo"}, headers=JSON
    )
    assert response.status_code == 200
    titles = {c["title"] for c in client.get("/conversations", headers=JSON).json["conversations"]}
    assert titles == {"Grace Hopper", "Analytical club"}


def test_seed_demo_twice_creates_no_duplicates(app):
    flask(app, "seed-demo")
    again = flask(app, "seed-demo")
    assert again.exit_code == 0, again.output
    assert "Log in with" in again.output
    assert counts(app) == (4, 2, 4)


JSON = {"Accept": "application/json"}
