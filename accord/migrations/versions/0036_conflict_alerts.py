"""conflict alerts: overlaps found in the channel data before anyone filed

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 13:50:00

One row per kind of overlap and pair of objects (unique), so an import that finds the same
overlap again brings the open alert up to date and leaves a dismissed one dismissed; each
import counts the alerts it raised.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.tables

revision: str = '0036'
down_revision: Union[str, None] = '0035'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# A new table that 0035's code never reads.
serves_previous_release = True


def upgrade() -> None:
    op.create_table(
        'conflict_alert',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column(
            'kind',
            sa.Enum(
                'same_customer', 'exclusive_territory', 'direct_on_registered_account',
                name='alertkind', native_enum=False, length=32,
            ),
            nullable=False,
        ),
        sa.Column('pair_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column('partner_ids', sa.JSON(), nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('reasons', sa.JSON(), nullable=False),
        sa.Column('evidence', sa.JSON(), nullable=False),
        sa.Column(
            'state',
            sa.Enum(
                'open', 'dismissed', 'converted', name='alertstate', native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column('detected_at', models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column('import_id', sa.Integer(), nullable=True),
        sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('decided_at', models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column('decision_reason', sa.Text(), nullable=True),
        sa.Column('dispute_number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.ForeignKeyConstraint(['import_id'], ['channel_import.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'pair_key'),
    )
    # A new, empty table: its indexes are built in its own transaction, blocking no one.
    op.create_index('ix_conflict_alert_kind', 'conflict_alert', ['kind'])
    op.create_index('ix_conflict_alert_state', 'conflict_alert', ['state'])
    # Catalogue changes only (a constant default), on a table 0035's code writes without them.
    with op.batch_alter_table('channel_import') as batch:
        for name in ('alerts_raised', 'alerts_refreshed'):
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('channel_import') as batch:
        batch.drop_column('alerts_refreshed')
        batch.drop_column('alerts_raised')
    op.drop_table('conflict_alert')
