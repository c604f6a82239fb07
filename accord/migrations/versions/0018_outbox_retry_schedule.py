"""outbox retry schedule: when a message is next tried, and which relay holds it

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 16:30:00

The relay claims one message at a time under a renewable lease held in `claimed_by` (a relay's
random id) and `claimed_at`; a temporary SMTP failure puts `next_attempt_at` off with a growing
backoff. Rows from before this migration have no `next_attempt_at` and are due at once.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0018'
down_revision: Union[str, None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_index('ix_outbox_message_due', ['state', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_message_due')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('next_attempt_at')
