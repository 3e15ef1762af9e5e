"""reactions

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 15:45:00

One person's emoji on one message.
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'message_reactions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('emoji', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['message_id'], ['messages.id'], ondelete='CASCADE',
            name='fk_message_reactions_message_id_messages',
        ),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], ondelete='CASCADE', name='fk_message_reactions_user_id_users'
        ),
        sa.PrimaryKeyConstraint('id', name='pk_message_reactions'),
        sa.UniqueConstraint(
            'message_id', 'user_id', 'emoji', name='uq_message_reactions_message_id_user_id_emoji'
        ),
    )
    op.create_index('ix_message_reactions_message_id', 'message_reactions', ['message_id'])


def downgrade():
    op.drop_index('ix_message_reactions_message_id', table_name='message_reactions')
    op.drop_table('message_reactions')
