"""web sessions, sign-in throttle, account audit

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 17:30:00

Sessions are recorded on the server so that signing out ends them (a copied cookie no longer
works); failed sign-ins are counted per account and per client address for every web process;
an account's sign-ins, failures and lockouts are kept in its audit. Sessions signed before this
migration have no row and end: everyone signs in again once.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

import models.tables


revision: str = '0022'
down_revision: Union[str, None] = '0021'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('web_session',
    sa.Column('id_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('login', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('role', sa.Enum('partner', 'mediator', 'board', 'compliance', 'admin', 'system', name='role', native_enum=False, length=32), nullable=False),
    sa.Column('created_at', models.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', models.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['login'], ['user_account.login'], ),
    sa.PrimaryKeyConstraint('id_sha256')
    )
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_login'), ['login'], unique=False)

    op.create_table('sign_in_throttle',
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', models.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', models.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('refusals', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'subject')
    )
    op.create_table('account_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('login', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('at', models.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['login'], ['user_account.login'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('account_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_event_login'), ['login'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('account_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_event_login'))
    op.drop_table('account_event')
    op.drop_table('sign_in_throttle')
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_login'))
    op.drop_table('web_session')
