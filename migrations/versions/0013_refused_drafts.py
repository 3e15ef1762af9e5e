"""refused drafts

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 03:00:00

The text of a send refused without JavaScript, kept for the sign-in that typed it, so the
conversation page the browser is redirected to shows it again with the reason.
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'refused_drafts',
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('error', sa.String(length=300), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('session_id', 'conversation_id'),
    )
    op.create_index('ix_refused_drafts_created_at', 'refused_drafts', ['created_at'])


def downgrade():
    op.drop_index('ix_refused_drafts_created_at', table_name='refused_drafts')
    op.drop_table('refused_drafts')
