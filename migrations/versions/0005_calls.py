"""calls

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 13:08:42

Call lifecycle (issue 5): who a call rings and who is in it, one live call per conversation
(a unique column set only while the call is live), and a timeline message per finished call.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('call_participants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('joined_at', sa.DateTime(), nullable=True),
    sa.Column('left_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("state IN ('invited', 'joined', 'declined', 'left')", name=op.f('ck_call_participants_state')),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_call_participants_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_call_participants_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_participants')),
    sa.UniqueConstraint('call_id', 'user_id', name=op.f('uq_call_participants_call_id_user_id'))
    )
    with op.batch_alter_table('call_participants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_participants_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('live_conversation_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_calls_live_conversation_id'), ['live_conversation_id'])

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('call_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_messages_call_id_calls'), 'calls', ['call_id'], ['id'], ondelete='SET NULL')



def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_messages_call_id_calls'), type_='foreignkey')
        batch_op.drop_column('call_id')

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_calls_live_conversation_id'), type_='unique')
        batch_op.drop_column('live_conversation_id')

    with op.batch_alter_table('call_participants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_participants_user_id'))

    op.drop_table('call_participants')
