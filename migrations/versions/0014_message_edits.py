"""message edits

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 12:20:00

When a message's author last changed its text: the message shows "edited".
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages') as batch_op:
        batch_op.add_column(sa.Column('edited_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('messages') as batch_op:
        batch_op.drop_column('edited_at')
