"""mention names

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 18:25:00

The name a message's text names each mentioned person by, so the mention still shows after
they rename themselves. Mentions recorded before keep showing by the present name.
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('message_mentions') as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=80), nullable=True))


def downgrade():
    with op.batch_alter_table('message_mentions') as batch_op:
        batch_op.drop_column('name')
