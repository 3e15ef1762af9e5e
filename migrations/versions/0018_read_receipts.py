"""read receipts

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 16:40:00

Whether a user's reading is shown to the others ("Seen").
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(
            sa.Column('read_receipts', sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('read_receipts')
