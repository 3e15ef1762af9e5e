"""mentions

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 16:00:00

The participants a message names with @.
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'message_mentions',
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ['message_id'], ['messages.id'], ondelete='CASCADE',
            name='fk_message_mentions_message_id_messages',
        ),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], ondelete='CASCADE', name='fk_message_mentions_user_id_users'
        ),
        sa.PrimaryKeyConstraint('message_id', 'user_id', name='pk_message_mentions'),
    )
    op.create_index('ix_message_mentions_user_id', 'message_mentions', ['user_id'])


def downgrade():
    op.drop_index('ix_message_mentions_user_id', table_name='message_mentions')
    op.drop_table('message_mentions')
