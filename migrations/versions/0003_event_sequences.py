"""per-user event sequence numbers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 11:50:00

Events become numbered per recipient (event_recipients.seq, users.event_seq) instead of by the
global event id. Stored events are only a replay buffer for open tabs, so they are dropped
here rather than renumbered: a tab open across this upgrade is told to reload once.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_table('event_recipients')
    op.execute(sa.text('DELETE FROM events'))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('event_seq', sa.BigInteger(), server_default='0', nullable=False)
        )

    op.create_table('event_recipients',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_recipients_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_event_recipients_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'seq', name=op.f('pk_event_recipients'))
    )
    with op.batch_alter_table('event_recipients', schema=None) as batch_op:
        batch_op.create_index('ix_event_recipients_event_id', ['event_id'], unique=False)


def downgrade():
    op.drop_table('event_recipients')
    op.execute(sa.text('DELETE FROM events'))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('event_seq')

    op.create_table('event_recipients',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_recipients_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_event_recipients_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'event_id', name=op.f('pk_event_recipients'))
    )
    with op.batch_alter_table('event_recipients', schema=None) as batch_op:
        batch_op.create_index('ix_event_recipients_event_id', ['event_id'], unique=False)
