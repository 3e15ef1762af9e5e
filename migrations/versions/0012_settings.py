"""run-time settings

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 04:00:00

Settings an admin changes on the admin page (who may register, how long events are kept for
replay): each row overrides the server's configuration.
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'settings',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('value', sa.String(length=200), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade():
    op.drop_table('settings')
