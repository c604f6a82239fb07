"""idempotency records: the request each idempotency key was first sent with

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 15:00:00

One row per (action, actor, key), hashed into `scope`, holding the fingerprint of the request
first sent under it: the same key with another request is refused instead of answered as the
first. Keys used before this migration have no rows; their first reuse records one.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0014'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('idempotency_record',
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope')
    )


def downgrade() -> None:
    op.drop_table('idempotency_record')
