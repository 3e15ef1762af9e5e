"""client keys on messages

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 22:50:00

Each composer carries a key made when it was rendered; the same key twice from one user is
one message, so a retried, double-clicked or replayed send never doubles.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_key', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_messages_user_id_client_key', ['user_id', 'client_key'])


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint('uq_messages_user_id_client_key', type_='unique')
        batch_op.drop_column('client_key')
