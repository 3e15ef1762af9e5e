"""SQLite's checkpoints in the background (what gunicorn's workers start, gunicorn.conf.py)."""

import sqlite3
import time

import sqlalchemy as sa

from chipper import create_app
from chipper.db_setup import FALLBACK_CHECKPOINT_PAGES, checkpoint_in_background
from chipper.extensions import db
from chipper.models import User
from chipper.services import conversations, messages
from chipper.services.accounts import register_user
from chipper.services.conversations import Membership
from tests.conftest import _test_config


def _bodies_in_the_database_file(path) -> list[str]:
    """What the main file alone holds: immutable=1 ignores the write-ahead log."""
    connection = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return [row[0] for row in connection.execute("SELECT body FROM messages")]
    except sqlite3.DatabaseError:  # a page being copied in right now
        return []
    finally:
        connection.close()


def test_committed_messages_reach_the_database_file_without_a_request_checkpointing(tmp_path):
    path = tmp_path / "chipper.sqlite3"
    app = create_app(_test_config(f"sqlite:///{path}", tmp_path))
    with app.app_context():
        db.create_all()
        ada = register_user("Ada", "ada@example.com", "correct horse battery")
        bob = register_user("Bob", "bob@example.com", "correct horse battery")
        chat, _ = conversations.start_private(ada, bob.id)
        chat_id, ada_id = chat.id, ada.id
        db.session.remove()

    checkpointer = checkpoint_in_background(app, interval=0.05)
    try:
        with app.app_context():
            # Requests no longer checkpoint at SQLite's default of 1,000 pages...
            setting = db.session.execute(sa.text("PRAGMA wal_autocheckpoint")).scalar()
            assert setting == FALLBACK_CHECKPOINT_PAGES
            ada = db.session.get(User, ada_id)
            chat = conversations.conversation_for(ada, chat_id)
            messages.send_message(ada, Membership.of(chat), "Written through")
        # ...yet what they commit is copied into the file within moments (a few pages would
        # otherwise stay in the log until 1,000 had piled up).
        deadline = time.monotonic() + 5
        while "Written through" not in _bodies_in_the_database_file(path):
            assert time.monotonic() < deadline, "the message never left the write-ahead log"
            time.sleep(0.05)
    finally:
        checkpointer.stop()
        app.extensions["chipper.push"].sender.close()
        with app.app_context():
            db.engine.dispose()


def test_only_a_sqlite_file_gets_a_checkpointer(tmp_path):
    app = create_app(_test_config("sqlite://", tmp_path))
    assert checkpoint_in_background(app) is None
