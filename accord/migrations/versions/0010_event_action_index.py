"""index audit entries by action

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 09:40:00

The metrics endpoint counts audit entries by action (SLA warnings and breaches, remedies,
decisions) at every scrape; the index answers that from the index alone.
"""
from typing import Sequence, Union

from alembic import op

from accord.migrations import online

revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Built while entries go on being written (CONCURRENTLY on PostgreSQL).
    online.create_index('ix_dispute_event_action', 'dispute_event', 'action')


def downgrade() -> None:
    op.drop_index('ix_dispute_event_action', table_name='dispute_event')
