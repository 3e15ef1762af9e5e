"""call screen sharing per member

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 14:40:00

Who in a call is showing their screen (issue 5); calls.screen_sharing says whether anyone is.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('call_participants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('screen_sharing', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('call_participants', schema=None) as batch_op:
        batch_op.drop_column('screen_sharing')
