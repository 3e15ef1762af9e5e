"""message search

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 18:40:00

The search index (chipper.services.search): an FTS5 table on SQLite, a tsvector table with a
GIN index on PostgreSQL; the messages already there are indexed.
"""
from alembic import op
import sqlalchemy as sa

from chipper import formatting, search_query
from chipper.services.search import DROP, SCHEMA, TABLE


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

BATCH = 500


def upgrade():
    conn = op.get_bind()
    for statement in SCHEMA.get(conn.dialect.name, []):
        op.execute(statement)
    rows = conn.execute(
        sa.text(
            "SELECT m.id, m.body, a.original_name FROM messages m "
            "LEFT JOIN attachments a ON a.message_id = m.id "
            "WHERE m.deleted_at IS NULL AND m.type != 'call' ORDER BY m.id"
        )
    ).all()
    if conn.dialect.name == 'postgresql':
        insert = sa.text(
            f"INSERT INTO {TABLE} (message_id, document) VALUES (:id, to_tsvector('simple', :text))"
        )
    else:
        insert = sa.text(f"INSERT INTO {TABLE} (rowid, document) VALUES (:id, :text)")
    documents = []
    for message_id, body, file_name in rows:
        text = search_query.document(formatting.plain_text(body), file_name)
        if text:
            documents.append({'id': message_id, 'text': text})
    for start in range(0, len(documents), BATCH):
        conn.execute(insert, documents[start:start + BATCH])


def downgrade():
    op.execute(DROP)
