"""the audit of conflict alerts: each decision on one, who, when and why

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-07 17:20:00

Dismissing an alert, and making it a dispute, are recorded in an append-only table beside the
alert (whose own row keeps only the last decision).
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.tables

revision: str = '0038'
down_revision: Union[str, None] = '0037'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# A new table that 0037's code never reads.
serves_previous_release = True


def upgrade() -> None:
    op.create_table(
        'alert_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('alert_id', sa.Integer(), nullable=False),
        sa.Column('at', models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['alert_id'], ['conflict_alert.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_alert_event_alert_id', 'alert_event', ['alert_id'])


def downgrade() -> None:
    op.drop_index('ix_alert_event_alert_id', table_name='alert_event')
    op.drop_table('alert_event')
