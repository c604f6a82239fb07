"""the channel data layer: deal registrations, opportunities and leads, accounts and territories
as a CRM knows them, and the imports that bring them in

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07 13:10:00

Conflict prevention (issue 20) reads the channel's own data: who registered, pursues or was
routed which customer, in which territory. Three new tables hold the CRM's rows by their external
id and modification time (what makes an import incremental); channel_import records each
import's progress and outcome. Accounts and territories, already in the directory, gain what a
CRM export says of them; a partner gains the id the CRM knows it by.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.tables
from accord.migrations import online

revision: str = '0035'
down_revision: Union[str, None] = '0034'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# New tables, and nullable columns (or one with a constant default) that 0034's code never
# reads or writes: its processes stay ready during the upgrade.
serves_previous_release = True


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def _channel_row(table: str, *columns: sa.Column, indexed: Sequence[str]) -> None:
    op.create_table(
        table,
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('modified_at', models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column('import_id', sa.Integer(), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(['import_id'], ['channel_import.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('external_id'),
    )
    # A new, empty table: its indexes are built in its own transaction, blocking no one.
    for column in ('import_id', *indexed):
        op.create_index(f'ix_{table}_{column}', table, [column])


def _string(name: str, length: int | None = None, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def _utc(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, models.tables.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        'channel_import',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column(
            'kind',
            _enum('channelkind', 'registration', 'opportunity', 'lead', 'account', 'territory'),
            nullable=False,
        ),
        sa.Column('format', _enum('importformat', 'csv', 'salesforce', 'api'), nullable=False),
        _string('file_name', 255, nullable=False),
        _string('digest', 64, nullable=False),
        sa.Column(
            'state',
            _enum('importstate', 'reading', 'writing', 'done', 'refused', 'stopped'),
            nullable=False,
        ),
        _string('started_by', 64, nullable=False),
        _utc('started_at', nullable=False),
        _utc('heartbeat_at', nullable=False),
        _utc('finished_at'),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                'rows_total', 'rows_done', 'created', 'updated', 'unchanged', 'problem_count'
            )
        ),
        sa.Column('problems', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    partner = sa.ForeignKeyConstraint(['partner_id'], ['partner.id'])
    _channel_row(
        'deal_registration',
        _string('partner_id', nullable=False),
        _string('customer_name', 200, nullable=False),
        _string('customer_key', 200, nullable=False),
        _string('customer_domain', 253),
        _string('customer_address', 500),
        _string('country', 2),
        _string('territory_code', 64),
        _string('account_code', 64),
        _string('product', 200),
        sa.Column('amount', sa.Numeric(precision=16, scale=2), nullable=True),
        _string('currency', 3),
        sa.Column(
            'status',
            _enum(
                'registrationstatus',
                'submitted', 'approved', 'rejected', 'expired', 'won', 'lost',
            ),
            nullable=False,
        ),
        _utc('registered_at', nullable=False),
        _utc('expires_at'),
        partner,
        indexed=(
            'account_code', 'customer_domain', 'customer_key', 'partner_id', 'territory_code'
        ),
    )
    _channel_row(
        'opportunity',
        _string('partner_id', nullable=False),
        _string('name', 200, nullable=False),
        _string('customer_name', 200, nullable=False),
        _string('customer_key', 200, nullable=False),
        _string('customer_domain', 253),
        _string('account_code', 64),
        _string('territory_code', 64),
        _string('registration_id', 64),
        _string('stage', 64, nullable=False),
        sa.Column('amount', sa.Numeric(precision=16, scale=2), nullable=True),
        _string('currency', 3),
        sa.Column('expected_close', sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(['partner_id'], ['partner.id']),
        indexed=('account_code', 'customer_domain', 'customer_key', 'partner_id'),
    )
    _channel_row(
        'lead',
        _string('partner_id'),
        _string('customer_name', 200, nullable=False),
        _string('customer_key', 200, nullable=False),
        _string('customer_domain', 253),
        _string('email', 320),
        _string('country', 2),
        _string('territory_code', 64),
        _string('status', 64, nullable=False),
        _utc('routed_at'),
        sa.ForeignKeyConstraint(['partner_id'], ['partner.id']),
        indexed=('customer_domain', 'customer_key', 'partner_id'),
    )
    # Columns the running release never names: catalogue changes only (nullable, or a constant
    # default), each under a lock held for an instant.
    with op.batch_alter_table('account') as batch:
        batch.add_column(_string('domain', 253))
        batch.add_column(_string('address', 500))
        batch.add_column(_string('country', 2))
        batch.add_column(_string('territory_code', 64))
        batch.add_column(_utc('modified_at'))
    with op.batch_alter_table('territory') as batch:
        # The default fills the rows there are (the old release inserts without the column);
        # the models always write it.
        batch.add_column(sa.Column('countries', sa.JSON(), nullable=False, server_default='[]'))
        batch.add_column(_utc('modified_at'))
    with op.batch_alter_table('partner') as batch:
        batch.add_column(_string('crm_id', 64))
    online.create_index('ix_partner_crm_id', 'partner', 'crm_id', unique=True)


def downgrade() -> None:
    online.drop_index('ix_partner_crm_id')
    with op.batch_alter_table('partner') as batch:
        batch.drop_column('crm_id')
    with op.batch_alter_table('territory') as batch:
        batch.drop_column('modified_at')
        batch.drop_column('countries')
    with op.batch_alter_table('account') as batch:
        for name in ('modified_at', 'territory_code', 'country', 'address', 'domain'):
            batch.drop_column(name)
    for table in ('lead', 'opportunity', 'deal_registration', 'channel_import'):
        op.drop_table(table)
