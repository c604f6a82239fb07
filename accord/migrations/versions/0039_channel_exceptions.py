"""exceptions to the rules of engagement approved by the board, and their audit

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-07 19:30:00

A partner asks the board for an exception (channel_exception, the read model of its workflow);
every step of it is recorded in exception_event, append-only.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.tables

revision: str = '0039'
down_revision: Union[str, None] = '0038'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# New tables that 0038's code never reads.
serves_previous_release = True


def upgrade() -> None:
    op.create_table(
        'channel_exception',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('partner_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('clause', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column('scope_kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('scope_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('affected_partner_ids', sa.JSON(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column('requested_at', models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column('until', sa.Date(), nullable=False),
        sa.Column('expires_at', models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column('playbook_version', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('state', sa.Enum('requested', 'in_review', 'approved', 'denied', 'withdrawn', 'lapsed', 'expired', name='exceptionstate', native_enum=False, length=32), nullable=False),
        sa.Column('objections_close_at', models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column('decision_due_at', models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column('panel', sa.JSON(), nullable=False),
        sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column('decided_at', models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column('decision_reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['partner_id'], ['partner.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_channel_exception_partner_id', 'channel_exception', ['partner_id'])
    op.create_index('ix_channel_exception_state', 'channel_exception', ['state'])
    op.create_table(
        'exception_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('exception_id', sa.Integer(), nullable=False),
        sa.Column('step', sa.Integer(), nullable=False),
        sa.Column('at', models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['exception_id'], ['channel_exception.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('exception_id', 'step'),
    )
    op.create_index('ix_exception_event_exception_id', 'exception_event', ['exception_id'])


def downgrade() -> None:
    op.drop_index('ix_exception_event_exception_id', table_name='exception_event')
    op.drop_table('exception_event')
    op.drop_index('ix_channel_exception_state', table_name='channel_exception')
    op.drop_index('ix_channel_exception_partner_id', table_name='channel_exception')
    op.drop_table('channel_exception')
