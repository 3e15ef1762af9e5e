"""Searching your messages: one index row per message that people wrote, kept in step by the
verbs that send, edit and delete, in their transactions; ranked best first (BM25 on SQLite,
ts_rank on PostgreSQL), only over the conversations the searcher is in, never a deleted one.

The index is a table of its own, different on each database (an FTS5 virtual table; a table
with a tsvector and a GIN index), so it lives outside the models: `SCHEMA` makes it when the
tables are made (create_all, and migration 0021) and `is_index_table` keeps it out of the
comparison between the models and the database.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from markupsafe import Markup
from sqlalchemy.orm import selectinload

from chipper import formatting, search_query
from chipper.extensions import db
from chipper.models import Conversation, Message, Participant, User
from chipper.services.conversations import conversation_for

TABLE = "message_search"
PER_PAGE = 20

SCHEMA = {
    "sqlite": [
        # rowid is the message's id. unicode61 splits on what is not a letter or digit, as
        # search_query does; the text is folded already.
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5("
        "document, tokenize = 'unicode61 remove_diacritics 2')"
    ],
    "postgresql": [
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        "message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE, "
        "document TSVECTOR NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_document ON {TABLE} USING gin (document)",
    ],
}
DROP = f"DROP TABLE IF EXISTS {TABLE}"


def is_index_table(name: str) -> bool:
    """The index and FTS5's own tables behind it (message_search_data, ...)."""
    return name == TABLE or name.startswith(TABLE + "_")


def create_index(connection) -> None:
    for statement in SCHEMA.get(connection.dialect.name, []):
        connection.exec_driver_sql(statement)


# With the tables (db.create_all, as the tests make them), and gone before them.
sa.event.listen(Message.__table__, "after_create", lambda _t, conn, **_kw: create_index(conn))
sa.event.listen(
    Message.__table__, "before_drop", lambda _t, conn, **_kw: conn.exec_driver_sql(DROP)
)


def _dialect() -> str:
    return db.session.get_bind().dialect.name


# Keeping it in step


def index(message: Message, *, new: bool = False) -> None:
    """(Re)indexes a message as it now is (`new`: not indexed before): its text and its
    file's name. Call entries are not indexed: nobody wrote their words. The caller commits."""
    if message.type == "call":
        return
    attachment = message.attachment
    text = search_query.document(
        formatting.plain_text(message.body), attachment.original_name if attachment else None
    )
    if not new:
        unindex(message.id)
    if not text:
        return
    if _dialect() == "postgresql":
        db.session.execute(
            sa.text(
                f"INSERT INTO {TABLE} (message_id, document) "
                "VALUES (:id, to_tsvector('simple', :text))"
            ),
            {"id": message.id, "text": text},
        )
    else:
        db.session.execute(
            sa.text(f"INSERT INTO {TABLE} (rowid, document) VALUES (:id, :text)"),
            {"id": message.id, "text": text},
        )


def unindex(message_id: int) -> None:
    key = "message_id" if _dialect() == "postgresql" else "rowid"
    db.session.execute(sa.text(f"DELETE FROM {TABLE} WHERE {key} = :id"), {"id": message_id})


# Asking it


@dataclass(frozen=True)
class Hit:
    message: Message
    conversation: Conversation
    snippet: Markup
    score: float


@dataclass(frozen=True)
class Results:
    hits: list[Hit]
    next: str | None  # where the next page starts, for ?after=
    query: search_query.Query
    within: Conversation | None = None  # the conversation searched, when only one


def search(
    user: User, text: str, conversation_id: int | None = None, after: str | None = None
) -> Results:
    """The user's messages that match `text`, best first, a page at a time (`after`: the
    `next` of the page before). Within one conversation when `conversation_id` is given (404
    when it is not theirs). A read: nothing is written."""
    within = conversation_for(user, conversation_id) if conversation_id is not None else None
    query = search_query.parse(text or "")
    if query.empty:
        return Results([], None, query, within)
    cursor = _cursor(after)
    rows = _ranked(user.id, query, conversation_id, cursor, PER_PAGE + 1)
    more = len(rows) > PER_PAGE
    rows = rows[:PER_PAGE]
    messages = {
        m.id: m
        for m in db.session.scalars(
            sa.select(Message)
            .where(Message.id.in_([r[0] for r in rows]))
            .options(selectinload(Message.author), selectinload(Message.attachment))
        )
    }
    conversations = {
        c.id: c
        for c in db.session.scalars(
            sa.select(Conversation)
            .where(Conversation.id.in_({m.conversation_id for m in messages.values()}))
            .options(selectinload(Conversation.participants).selectinload(Participant.user))
        )
    }
    hits = []
    for message_id, score in rows:
        message = messages[message_id]
        shown = formatting.plain_text(message.body)
        if message.attachment:
            shown = (shown + " " + message.attachment.original_name).strip()
        conversation = conversations[message.conversation_id]
        hits.append(Hit(message, conversation, search_query.snippet(shown, query), score))
    last = hits[-1] if more and hits else None
    return Results(hits, f"{last.score!r}_{last.message.id}" if last else None, query, within)


def _cursor(after: str | None) -> tuple[float, int] | None:
    """A `next` given back; anything else starts from the top."""
    try:
        score, message_id = (after or "").split("_")
        cursor = (float(score), int(message_id))
    except ValueError:
        return None
    return cursor if cursor[0] == cursor[0] else None  # not NaN


def _ranked(user_id, query, conversation_id, cursor, limit) -> list[tuple[int, float]]:
    """(message id, score) of the matches the user may see, best score first (higher is
    better on both databases)."""
    if _dialect() == "postgresql":
        # ts_rank is a float4: as a float8 the page mark given back compares equal to it.
        matches = (
            f"SELECT s.message_id AS id, ts_rank(s.document, q.q)::float8 AS score "
            f"FROM {TABLE} s, to_tsquery('simple', :q) AS q(q) WHERE s.document @@ q.q"
        )
        params = {"q": search_query.tsquery(query)}
    else:
        # bm25() is lower for better matches.
        matches = f"SELECT rowid AS id, -bm25({TABLE}) AS score FROM {TABLE} WHERE {TABLE} MATCH :q"
        params = {"q": search_query.fts5(query)}
    where = ["m.deleted_at IS NULL"]
    if conversation_id is not None:
        where.append("m.conversation_id = :cid")
        params["cid"] = conversation_id
    if cursor is not None:
        where.append("(hits.score < :score OR (hits.score = :score AND hits.id < :last))")
        params["score"], params["last"] = cursor
    statement = sa.text(
        f"WITH hits AS ({matches}) "
        "SELECT hits.id, hits.score FROM hits "
        "JOIN messages m ON m.id = hits.id "
        f"JOIN {Participant.__tablename__} p "
        "ON p.conversation_id = m.conversation_id AND p.user_id = :uid "
        f"WHERE {' AND '.join(where)} "
        "ORDER BY hits.score DESC, hits.id DESC LIMIT :limit"
    )
    rows = db.session.execute(statement, {**params, "uid": user_id, "limit": limit})
    return [(int(r[0]), float(r[1])) for r in rows]
