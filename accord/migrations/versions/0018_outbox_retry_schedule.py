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

from accord.migrations import online
import sqlalchemy as sa
import sqlmodel


revision: str = '0018'
down_revision: Union[str, None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # IF NOT EXISTS: run again from the start if it stopped while the index was being built.
    op.add_column('outbox_message', sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True), if_not_exists=online.postgres())
    op.add_column('outbox_message', sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True), if_not_exists=online.postgres())
    # Built while the outbox goes on being written (CONCURRENTLY on PostgreSQL).
    online.create_index('ix_outbox_message_due', 'outbox_message', 'state, next_attempt_at')


def downgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_message_due')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('next_attempt_at')
