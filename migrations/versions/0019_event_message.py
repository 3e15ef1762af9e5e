"""events name their message

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 18:30:00

A message's events name it, so that an edit or a deletion restates them: the replay store keeps
each message only as it now is (no deleted or replaced text). Events recorded before this are
given their message from their payload.
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events') as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_events_message_id', ['message_id'], unique=False)
    events = sa.table(
        'events',
        sa.column('id', sa.Integer),
        sa.column('kind', sa.String),
        sa.column('payload', sa.Text),
        sa.column('message_id', sa.Integer),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(events.c.id, events.c.payload).where(events.c.kind.like('message-%'))
    ).all()
    named = []
    for event_id, payload in rows:
        message_id = (json.loads(payload).get('data') or {}).get('id')
        if isinstance(message_id, int):
            named.append({'event_id': event_id, 'message_id': message_id})
    if named:
        conn.execute(
            events.update()
            .where(events.c.id == sa.bindparam('event_id'))
            .values(message_id=sa.bindparam('message_id')),
            named,
        )


def downgrade():
    with op.batch_alter_table('events') as batch_op:
        batch_op.drop_index('ix_events_message_id')
        batch_op.drop_column('message_id')
