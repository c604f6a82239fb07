"""outbox merged_into: mail to one recipient on one dispute sent as one email

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 21:00:00

Notifications to the same person on the same dispute enqueued within a moment of each other
(settled, remedy applied, closed) go out as one email: the first one's row carries the merged
message, each other row points at it. Rows from before were each sent on their own: null.
"""
from typing import Sequence, Union

from alembic import op

from accord.migrations import online
import sqlalchemy as sa


revision: str = '0025'
down_revision: Union[str, None] = '0024'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # IF NOT EXISTS: run again from the start if it stopped while the index was being built.
    op.add_column('outbox_message', sa.Column('merged_into', sa.Integer(), nullable=True), if_not_exists=online.postgres())
    online.create_index('ix_outbox_message_merged_into', 'outbox_message', 'merged_into')


def downgrade() -> None:
    with op.batch_alter_table('outbox_message') as batch:
        batch.drop_index('ix_outbox_message_merged_into')
        batch.drop_column('merged_into')
