"""avatars

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 21:10:00

A person's picture: the stored file's name (a 256 px square WebP in the upload folder).
"""
from alembic import op
import sqlalchemy as sa


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(sa.Column('avatar_name', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('avatar_name')
